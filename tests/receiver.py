"""A real webhook receiver for tests and benches: an HTTP server in a thread that records each
delivery and answers as scripted (e.g. 500, 500, then 200)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()
    answered: int
    received_wall: float = 0.0  # time.time(), to compare with the server's timestamps

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    def verified(self, secret: str) -> dict:
        """The event, once its signature checks out with `secret` (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=list)  # the first deliveries' answers; then 200
    headers: dict[str, str] = field(default_factory=dict)  # sent with every non-2xx answer
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.deliveries.append(
                        Delivery(dict(self.headers), body, time.monotonic(), status, time.time())
                    )
                    receiver._arrived.notify_all()
                self.send_response(status)
                if status >= 300:
                    for name, value in receiver.headers.items():
                        self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 30) -> list[Delivery]:
        with self._lock:
            self._arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

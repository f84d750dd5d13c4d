"""The production front: Debian's nginx with deploy/nginx.conf in front of the real server.

Slow and idle clients are held by nginx, not by the app's threads, so the API keeps answering
quickly while hundreds of them hang on; the client's address reaches the app's per-IP limits;
an upload over the limit is refused by nginx before its body is sent."""

import contextlib
import http.client
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, LiveServer, children_of, free_port

pytestmark = pytest.mark.slow

NGINX = "/usr/sbin/nginx"
CONF = ROOT / "deploy" / "nginx.conf"
HEADER_TIMEOUT = 10  # client_header_timeout in deploy/nginx.conf


def render(listen_port: int, upstream: str) -> str:
    """deploy/nginx.conf with only its deployment-specific lines replaced."""
    text = CONF.read_text()
    for line, replacement in (
        ("listen 80;", f"listen 127.0.0.1:{listen_port};"),
        ("server 127.0.0.1:8000;", f"server {upstream};"),
    ):
        assert text.count(line) == 1, f"deploy/nginx.conf should hold `{line}` once"
        text = text.replace(line, replacement)
    return text


class Front:
    """nginx in the foreground, its pid, logs and temp files in a folder of its own (-p)."""

    def __init__(self, app: LiveServer):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = render(self.port, f"127.0.0.1:{app.port}")
        self.prefix = Path(tempfile.mkdtemp(prefix="jpt-nginx-"))
        self.prefix.chmod(0o755)  # as root, nginx's workers run as www-data and must enter it
        (self.prefix / "logs").mkdir()
        (self.prefix / "nginx.conf").write_text(conf)
        self.proc = None

    def start(self):
        self.out = open(self.prefix / "logs" / "stdout.log", "w")
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.read_log()}")
            try:
                if requests.get(self.url + "/v1/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer: {self.read_log()}")

    def read_log(self) -> str:
        logs = [self.prefix / "logs" / "stdout.log", self.prefix / "logs" / "error.log"]
        return "\n".join(path.read_text()[-2000:] for path in logs if path.exists())

    def active_connections(self, at_least: int) -> int:
        """nginx's count of open client connections (this request's included), once it reaches
        `at_least` or after 5 s (nginx accepts a burst of connections a moment after they open)."""
        deadline = time.monotonic() + 5
        while True:
            status = requests.get(self.url + "/nginx_status", timeout=5)
            count = int(re.search(r"Active connections: (\d+)", status.text).group(1))
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            workers = children_of(self.proc.pid)
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                for pid in [*workers, self.proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.out.close()
        shutil.rmtree(self.prefix, ignore_errors=True)


@pytest.fixture(scope="module")
def front():
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is missing: `make test` installs Debian's nginx when run as root (apt-get install nginx)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:  # 400 held sockets, and their replacements
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    with LiveServer(env={"JPT_TRUSTED_PROXIES": "127.0.0.1"}) as app:
        proxy = None
        try:
            proxy = Front(app)
            proxy.start()
            yield proxy
        finally:
            if proxy:
                proxy.stop()


class HeldConnections:
    """Clients that hang on: `slow` of them send a request's headers one byte a second and never
    finish them, `idle` ones connect and send nothing. A connection nginx closes is opened
    again at once, so the count stays up; how long each first one lasted is kept."""

    def __init__(self, port: int, slow: int, idle: int):
        self.port = port
        self.lifetimes: list[float] = []  # seconds each first-generation connection lived
        self.reopened = 0
        self.stopping = threading.Event()
        self.sockets: dict[int, tuple[socket.socket, bool, float, bool]] = {}  # fd: (sock, slow, opened, first)
        self.poller = select.poll()
        for index in range(slow + idle):
            self._open(slow=index < slow, first=True)
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()

    def _open(self, *, slow: bool, first: bool):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if slow:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.setblocking(False)
        self.sockets[sock.fileno()] = (sock, slow, time.monotonic(), first)
        self.poller.register(sock, select.POLLIN)

    def _hold(self):
        tick = 0
        while not self.stopping.wait(0.25):
            tick += 1
            for fd, _ in self.poller.poll(0):  # readable: nginx closed it (it never answers these)
                sock, slow, opened, first = self.sockets.pop(fd)
                self.poller.unregister(fd)
                sock.close()
                if first:
                    self.lifetimes.append(time.monotonic() - opened)
                self.reopened += 1
                self._open(slow=slow, first=False)
            if tick % 4 == 0:
                for sock, slow, _, _ in list(self.sockets.values()):
                    if slow:
                        with contextlib.suppress(OSError):  # a closed one shows as readable next tick
                            sock.send(b"a")

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        for sock, *_ in self.sockets.values():
            sock.close()


def timed_health(port: int) -> float:
    """One GET /v1/health on a new connection, as a new client makes it: seconds to the whole answer."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v1/health")
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    assert answer.status == 200, body
    return elapsed


def test_health_answers_fast_while_400_slow_and_idle_clients_hang_on(front):
    for _ in range(20):  # warm up: the app's first requests, nginx's upstream connections
        timed_health(front.port)
    held = HeldConnections(front.port, slow=200, idle=200)
    try:
        assert front.active_connections(401) >= 401, "nginx holds the 400 connections (and this request)"
        latencies = [timed_health(front.port) for _ in range(300)]
        percentiles = statistics.quantiles(latencies, n=100)
        p50, p99 = percentiles[49] * 1000, percentiles[98] * 1000
        print(
            f"\n/v1/health through nginx, 400 connections held: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms ({len(latencies)} requests)"
        )
        assert p99 < 100, f"p99 {p99:.1f} ms"
        assert front.active_connections(401) >= 401, "they were held all along"

        # And nginx cuts them off: headers not complete within client_header_timeout.
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        while len(held.lifetimes) < 400 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert len(held.lifetimes) == 400, f"{len(held.lifetimes)} of 400 slow or idle clients were cut off"
        print(f"slow and idle clients cut off after {min(held.lifetimes):.1f}-{max(held.lifetimes):.1f} s")
        assert HEADER_TIMEOUT - 1 <= min(held.lifetimes) and max(held.lifetimes) <= HEADER_TIMEOUT + 5
    finally:
        held.close()
    assert timed_health(front.port) < 1


def post_key(port: int, source: str, forwarded: str | None = None) -> int:
    """POST /v1/keys through nginx from the loopback address `source` (any 127.x.y.z is this host)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    try:
        conn.request("POST", "/v1/keys", body="{}", headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_the_clients_address_reaches_the_per_ip_limits_and_cannot_be_forged(front):
    """nginx is 127.0.0.1, the app trusts it (JPT_TRUSTED_PROXIES); clients come from other loopback
    addresses. Keys are limited to 5 per IP a day: counted per client, not once for nginx, and a
    client writing its own X-Forwarded-For is still counted as itself."""
    statuses = [post_key(front.port, "127.0.0.5", forwarded=f"203.0.113.{i}") for i in range(5)]
    assert statuses == [201] * 5
    assert post_key(front.port, "127.0.0.5", forwarded="198.51.100.99") == 429, "a forged address does not help"
    assert post_key(front.port, "127.0.0.6") == 201, "another client has its own allowance"


def test_an_upload_over_the_limit_is_refused_by_nginx_before_its_body_is_sent(front):
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer jpt_x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % (13 * 1024 * 1024)
        )
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer
    assert b"Content-Type: application/json" in head
    assert b'"code": "file_too_large"' in body, "nginx answers in the API's error envelope"

    # Between the app's limit (10 MiB of audio) and nginx's, the app refuses it, in the same words.
    key = front.app.mint_key()
    answer = requests.post(
        front.url + "/v1/transcribe",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("big.wav", b"\0" * (10 * 1024 * 1024 + 4096))},
        timeout=30,
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "file_too_large", answer.text

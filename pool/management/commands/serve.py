"""`make run`: the API under gunicorn plus the server's demo worker, stopped together."""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import KEY_ALPHABET, KEY_BODY_LENGTH
from accounts.services import server_key_ensure
from pool.serializers import WORKER_ID
from pool.services import worker_heartbeat

ROOT = Path(settings.BASE_DIR)


def demo_worker_id(port: int) -> str:
    """This node's demo worker's id: `server-demo-<host>-<port>`, unless JPT_DEMO_WORKER_ID names
    it. Every node's demo worker runs under the one server key, so each needs an id of its own:
    under one id they were one worker, whose jobs, session and sign-off the nodes took from each
    other. Routing knows a demo worker by its key, not its id."""
    if settings.JPT_DEMO_WORKER_ID:
        if not re.fullmatch(WORKER_ID, settings.JPT_DEMO_WORKER_ID):
            raise CommandError(
                f"JPT_DEMO_WORKER_ID {settings.JPT_DEMO_WORKER_ID!r} is not a worker id: 1-64 of A-Z a-z 0-9 _ . -"
            )
        return settings.JPT_DEMO_WORKER_ID
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "host"
    return f"server-demo-{host}-{port}"


def demo_worker_key() -> str:
    if settings.JPT_DEMO_WORKER_KEY:
        return settings.JPT_DEMO_WORKER_KEY
    path = Path(settings.JPT_DEMO_WORKER_KEY_FILE)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = "jpt_" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_BODY_LENGTH))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(raw)
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Serve the API (gunicorn) and the server demo worker until Ctrl-C or SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo-worker", action="store_true")

    def handle(self, *args, host, port, no_demo_worker, **options):
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        env = {**os.environ, "HOST": host, "PORT": str(port)}
        base = f"http://{host}:{port}"
        demo = None if no_demo_worker else self.demo_worker_command(base, port)
        self.start(
            "api",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "jptranscribe/gunicorn.conf.py"),
                "jptranscribe.asgi:application",
            ],
            env,
        )
        if settings.JPT_TRANSLATION_AUTO_FETCH:
            # The translation model, fetched and converted beside the API when it is missing (the API
            # serves meanwhile; /v1/health shows how far along). A command by name: pool imports no translation.
            self.start("translation-model", [sys.executable, "manage.py", "translation_model", "prepare"], env)
        if not self.wait_for_health(base):
            said = f" (/v1/health said: {self.last_health})" if self.last_health else ""
            self.stderr.write(f"The API did not come up{said}; see the log above.")
            self.shutdown()
            sys.exit(1)
        self.stdout.write(f"API ready at {base}/v1/health  (Ctrl-C stops everything)")
        if demo:
            self.start("demo-worker", *demo)
        restarts = 0
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.children.items()):
                if proc.poll() is None or self.stopping:
                    continue
                if name == "api":
                    self.stderr.write(f"The API exited with code {proc.returncode}; stopping.")
                    self.shutdown()
                    sys.exit(1)
                if name == "translation-model":  # the model is in place, or it gave up: its log says which
                    del self.children[name]
                    continue
                restarts += 1
                delay = min(60, 2 ** min(restarts, 6))
                self.stderr.write(f"The demo worker exited with code {proc.returncode}; restarting in {delay} s.")
                del self.children[name]
                time.sleep(delay)
                if demo and not self.stopping:  # only the demo worker is restarted
                    self.start("demo-worker", *demo)
        self.shutdown()

    def demo_worker_command(self, base, port):
        if not (ROOT / "worker_client" / "worker.py").exists():
            self.stdout.write("No worker client in this checkout: the server demo is off.")
            return None
        raw_key = demo_worker_key()
        worker_id = demo_worker_id(port)
        # Counted as online before the API's first answer: a clip sent while the worker still
        # loads its model waits for it, instead of being refused for a demo that is coming.
        worker_heartbeat(key=server_key_ensure(raw_key), client_id=worker_id, name="server-demo")
        command = [
            sys.executable,
            "-m",
            "worker_client",
            "--server",
            base,
            "--name",
            "server-demo",
            "--worker-id",
            worker_id,
        ]
        for flag, value in (
            ("--engine", settings.JPT_DEMO_ENGINE),
            ("--model", settings.JPT_DEMO_MODEL),
            ("--threads", settings.JPT_DEMO_THREADS),
        ):
            if value:
                command += [flag, value]
        return command, {**os.environ, "JPT_KEY": raw_key}

    def start(self, name, command, env):
        self.children[name] = subprocess.Popen(command, cwd=ROOT, env=env)

    def wait_for_health(self, base, timeout=30):
        """Whether /v1/health answers 200 within `timeout`; else its last answer is `last_health`
        (a database or Redis it cannot reach says so there)."""
        self.last_health = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if self.children["api"].poll() is not None:
                return False
            try:
                answer = requests.get(f"{base}/v1/health", timeout=2)
                if answer.status_code == 200:
                    return True
                self.last_health = f"{answer.status_code} {answer.text[:300]}"
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def stop(self, signum, frame):
        self.stopping = True

    def shutdown(self):
        """Ask every child to stop (the worker finishes or hands back its job), then insist."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 40
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

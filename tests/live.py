"""A real server in its own processes (gunicorn with uvicorn workers, as in production), for end-to-end tests and benches.

SQLite by default; PostgreSQL when DATABASE_URL is set, in a database of its own
that is created and dropped here.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds used)} for every process, read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def children_of(pid: int) -> list[int]:
    return [child for child, (parent, _) in process_table().items() if parent == pid]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin(sql: str, url: str):
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


class LiveServer:
    def __init__(self, *, database_url: str | None = None, workers: int = 1, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="jpt-live-")
        self.database_url = database_url
        self.db_name = None
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "JPT_VAR_DIR": self.tmp.name,
            "JPT_WEB_WORKERS": str(workers),
            "DJANGO_SETTINGS_MODULE": "jptranscribe.settings",
            **(env or {}),
        }
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.db_name = f"jpt_live_{os.getpid()}_{self.port}"
            self.env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/" + self.db_name
        # Servers of one test run share its Redis; each database numbers its keys from 1, so each
        # server's counts (rate limits, waiting places) keep to a prefix of their own.
        self.env.setdefault("JPT_CACHE_KEY_PREFIX", f"live{self.port}")
        self.proc = None

    @classmethod
    def beside(cls, other: LiveServer, **kw) -> LiveServer:
        """A second app server on `other`'s PostgreSQL database (created and dropped by `other`)."""
        server = cls(**kw)
        server.env["DATABASE_URL"] = other.env["DATABASE_URL"]
        server.env["JPT_CACHE_KEY_PREFIX"] = other.env["JPT_CACHE_KEY_PREFIX"]  # one deployment: shared counts
        return server

    def kill(self):
        """SIGKILL the server's processes, as a crashed machine would stop them."""
        for pid in [*children_of(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def manage(self, *args, check=True, **kw):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=check,
                              capture_output=True, text=True, **kw)

    def start(self):
        if self.db_name:
            _pg_admin(f'CREATE DATABASE "{self.db_name}"', self.database_url)
        self.manage("migrate", "--noinput")
        return self.start_process()

    def start_process(self):
        """Start (or restart) the server processes on the same port and database."""
        self.log = open(Path(self.tmp.name) / "server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "jptranscribe/gunicorn.conf.py"),
             "jptranscribe.asgi:application"], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()}")
            try:
                if requests.get(self.url + "/v1/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.read_log()}")

    def read_log(self):
        return (Path(self.tmp.name) / "server.log").read_text()[-3000:]

    def stop_process(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()  # its workers too: killing only gunicorn's master would leave them running

    def stop(self):
        self.stop_process()
        if self.db_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)', self.database_url)
        self.tmp.cleanup()

    def mint_key(self) -> str:
        response = requests.post(self.url + "/v1/keys", json={}, timeout=10)
        response.raise_for_status()
        return response.json()["key"]

    def db_key(self, **fields) -> str:
        """A key made straight in the database (no per-IP minting limit), e.g. is_server=True."""
        args = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        out = self.manage("shell", "-c", f"from accounts.models import ApiKey; print(ApiKey.mint({args})[1])")
        return out.stdout.strip().splitlines()[-1]

    def get(self, path, key=None, **kw):
        return requests.get(self.url + path, headers={"Authorization": f"Bearer {key}"} if key else {},
                            timeout=kw.pop("timeout", 30), **kw)

    def transcribe(self, key, audio: bytes, name="clip.wav", wait=True, timeout=180, **fields):
        headers = {"Authorization": f"Bearer {key}"}
        if not wait:
            headers["Prefer"] = "respond-async"
        return requests.post(self.url + "/v1/transcribe", headers=headers, files={"file": (name, audio)},
                             data=fields, timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

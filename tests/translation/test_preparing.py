"""`serve`'s background preparation of the translation model (`translation_model prepare`), against
a local server offering a small OPUS-MT release: progress in /v1/health and /v1/translate while it
downloads, the model used as soon as it is in place, one line in the log when offline, one
downloader at a time. The preparers write to the cache from their own threads, hence
transactional databases."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command

import worker_client.models
from tests.live import ROOT, free_port
from tests.translation.tiny_model import opus_mt_zip
from translation import installing, preparing, services

pytestmark = pytest.mark.django_db(transaction=True)
ARCHIVE = "/OPUS-MT-models/ja-en/opus-2019-12-18.zip"


class ReleaseServer:
    """Serves the release archive (with ranges, to resume). While `gate` is clear it sends the first
    half of the archive and holds the rest, so that a download can be watched half done."""

    def __init__(self, body: bytes):
        self.body = body
        self.gate = threading.Event()
        self.gate.set()
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(dict(self.headers))
                if self.path != ARCHIVE:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))[1])
                part = server.body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                try:
                    half = len(server.body) // 2 - start
                    if half > 0 and not server.gate.is_set():
                        self.wfile.write(part[:half])
                        server.gate.wait(20)
                        part = part[half:]
                    self.wfile.write(part)
                except OSError:  # the client went away (a preparer told to stop)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{ARCHIVE}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def release_server(opus_release):
    server = ReleaseServer(opus_mt_zip(opus_release))
    yield server
    server.close()


@pytest.fixture
def target(settings, tmp_path, monkeypatch):
    """A model folder with nothing in it yet; preparation on; progress read in small steps, published often."""
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "models" / "opus-mt-ja-en")
    settings.JPT_TRANSLATION_AUTO_FETCH = True
    monkeypatch.setattr(worker_client.models, "CHUNK", 32 * 1024)
    monkeypatch.setattr(preparing, "PUBLISH_SECONDS", 0.02)
    return tmp_path / "models" / "opus-mt-ja-en"


@pytest.fixture
def closed_port_url():
    """A URL nothing answers at: what a machine without network gets."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{ARCHIVE}"


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail("timed out")


def in_thread(function, *args, **kwargs):
    thread = threading.Thread(target=function, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def health(client):
    return client.get("/v1/health").json()["translation"]


def test_it_downloads_and_converts_in_the_background_then_the_api_translates(alice, anonymous, target, release_server):
    release_server.gate.clear()
    before = health(anonymous)
    assert before["status"] == "unavailable" and "translation_model fetch" in before["reason"]
    preparer = preparing.Preparer(release_server.url, target, retry_seconds=3600)
    thread = in_thread(preparer.run)

    during = wait_for(lambda: (h := health(anonymous))["status"] == "preparing" and h.get("progress") and h)
    assert during == {
        "status": "preparing",
        "available": False,
        "model": None,
        "phase": "downloading",
        "progress": pytest.approx(0.5, abs=0.1),
    }
    response = alice.post("/v1/translate", {"text": "こんにちは。"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "translation_unavailable"
    assert re.fullmatch(
        r"The translation model is being prepared \(downloading, \d\d %\); try again in a minute\.",
        response.json()["error"]["message"],
    )

    release_server.gate.set()
    thread.join(30)
    assert not thread.is_alive()
    assert health(anonymous) == {
        "status": "ready",
        "available": True,
        "model": "opus-mt-ja-en",
        "version": "opus-2019-12-18",
    }
    response = alice.post("/v1/translate", {"text": "今日はいい天気ですね。"})  # no restart: the next request loads it
    assert response.status_code == 200 and response.json()["model"] == "opus-mt-ja-en@opus-2019-12-18"
    assert len(release_server.requests) == 1
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".opus")] == [], "no staging left"


def test_offline_it_says_once_why_translation_is_off_and_how_to_turn_it_on(
    alice, anonymous, target, closed_port_url, caplog, monkeypatch
):
    tries = []
    fetch = installing.fetch_opus_mt
    monkeypatch.setattr(installing, "fetch_opus_mt", lambda *a, **kw: tries.append(1) or fetch(*a, **kw))
    stop = threading.Event()
    preparer = preparing.Preparer(closed_port_url, target, retry_seconds=3600, stop=stop)
    with caplog.at_level(logging.DEBUG, logger="translation"):
        thread = in_thread(preparer.run)
        answer = wait_for(lambda: (h := health(anonymous))["status"] == "unavailable" and "retry_at" in h and h)
        time.sleep(0.3)
        assert thread.is_alive() and tries == [1], "it waits an hour before trying again, not in a loop"
        # a retry that fails the same way says nothing new
        assert preparer.attempt(keep_schedule=False) == 7200
        stop.set()
        thread.join(5)
        assert not thread.is_alive()

    lines = [r for r in caplog.records if r.name.startswith("translation")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    assert line.levelno == logging.WARNING and not line.exc_info, "one line, no traceback"
    assert re.fullmatch(
        r"translation is off: cannot download http://127\.0\.0\.1:\d+/\S+: ConnectionError \(no network\?\)\. "
        r"Turn it on with `\.venv/bin/python manage\.py translation_model fetch` \(or wait: tried again in 1 h\)\.",
        line.getMessage(),
    )

    assert answer["available"] is False and answer["model"] is None
    assert answer["reason"].startswith("Translation is off: cannot download") and "no network" in answer["reason"]
    response = alice.post("/v1/translate", {"text": "こんにちは。"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "translation_unavailable"
    message = response.json()["error"]["message"]
    assert re.search(
        # the day too when that is tomorrow (a run after 22:00 UTC)
        r"The server tries again at (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC, or run `python manage.py translation_model fetch`",
        message,
    )
    assert not target.exists()


def test_a_second_preparer_does_not_download_while_the_first_holds_the_turn(anonymous, target, release_server):
    release_server.gate.clear()
    first = in_thread(preparing.Preparer(release_server.url, target, retry_seconds=3600).attempt)
    wait_for(lambda: release_server.requests)
    second = preparing.Preparer(release_server.url, target, retry_seconds=3600)
    assert second.attempt() == preparing.BUSY_SECONDS
    assert len(release_server.requests) == 1
    assert health(anonymous)["status"] == "preparing", "the second process shows the first one's progress"

    release_server.gate.set()
    first.join(30)
    assert second.attempt() is None, "the model is there: nothing to do"
    assert len(release_server.requests) == 1
    assert services.status()["available"]


def test_a_preparer_that_died_does_not_leave_translation_preparing_forever(anonymous, target):
    turn_key, state_key = preparing._keys(target)
    cache.set(state_key, {"phase": "downloading", "done": 10, "total": 100})
    cache.set(turn_key, "a process that is gone", 60)
    assert health(anonymous)["status"] == "preparing"
    cache.delete(turn_key)  # what its turn's timeout does
    assert health(anonymous)["status"] == "unavailable"


def test_with_auto_fetch_off_health_only_says_what_is_installed(anonymous, target, settings):
    settings.JPT_TRANSLATION_AUTO_FETCH = False
    turn_key, state_key = preparing._keys(target)
    cache.set(state_key, {"phase": "downloading", "done": 10, "total": 100})
    cache.set(turn_key, "x", 60)
    assert health(anonymous)["status"] == "unavailable"


def test_the_test_suite_and_the_servers_it_starts_never_fetch_a_model(settings):
    assert os.environ.get("PYTEST_VERSION"), "subprocesses inherit it, and with it the default"
    from jptranscribe import settings as project_settings

    assert project_settings.JPT_TRANSLATION_AUTO_FETCH is False


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_stops_the_prepare_command_at_once_and_the_next_go_resumes(target, release_server, restore_signals):
    release_server.gate.clear()

    def terminate_once_downloading():
        wait_for(lambda: release_server.requests)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    in_thread(terminate_once_downloading)
    started = time.monotonic()
    call_command("translation_model", "prepare", "--url", release_server.url)
    assert time.monotonic() - started < 10
    turn_key, state_key = preparing._keys(target)
    assert cache.get(turn_key) is None and cache.get(state_key) is None, "the turn is handed back"
    assert not target.exists()
    kept = (target.parent / ".downloads" / (Path(ARCHIVE).name + ".part")).stat().st_size
    assert kept > 0

    release_server.gate.set()
    assert preparing.Preparer(release_server.url, target, retry_seconds=3600).attempt() is None
    assert release_server.requests[-1]["Range"] == f"bytes={kept}-", "the next go resumes the download"
    assert services.status()["available"]


@pytest.mark.slow
def test_serve_prepares_the_model_beside_the_api(release_server, tmp_path):
    """`make run`'s command, end to end: the API answers at once, health shows the download, and
    the model is used without a restart."""
    port = free_port()
    env = {
        **os.environ,
        "JPT_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "jptranscribe.settings",
        "JPT_TRANSLATION_AUTO_FETCH": "true",
        "JPT_TRANSLATION_FETCH_URL": release_server.url,
    }
    for name in ("DATABASE_URL", "JPT_CACHE_URL", "JPT_TRANSLATION_MODEL"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    release_server.gate.clear()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--no-demo-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def translation_health():
            try:
                return requests.get(f"{base}/v1/health", timeout=2).json()["translation"]
            except requests.RequestException:
                return None

        during = wait_for(
            lambda: (h := translation_health()) and h["status"] == "preparing" and h.get("progress") and h, timeout=30
        )
        assert during["phase"] == "downloading" and 0 < during["progress"] < 1
        release_server.gate.set()
        wait_for(lambda: (h := translation_health()) and h["status"] == "ready", timeout=30)
        key = requests.post(f"{base}/v1/keys", json={}, timeout=5).json()["key"]
        response = requests.post(
            f"{base}/v1/translate",
            json={"text": "こんにちは。"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200 and response.json()["model"] == "opus-mt-ja-en@opus-2019-12-18"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=45)
        assert proc.returncode == 0
        assert "translation: the model is ready at" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

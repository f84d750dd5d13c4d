"""`make run`'s process: serves the API and stops cleanly with all its children."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.live import ROOT, children_of, free_port
from tests.speech.cer import character_error_rate
from tests.speech.corpus import load_corpus

pytestmark = pytest.mark.slow


def transcribe(port, key, audio):
    return requests.post(f"http://127.0.0.1:{port}/v1/transcribe", headers={"Authorization": f"Bearer {key}"},
                         files={"file": ("greet.wav", audio)}, timeout=180)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_with_all_its_children(sig):
    port = free_port()
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "JPT_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "jptranscribe.settings",
               "XDG_CACHE_HOME": var}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            else:
                pytest.fail("the server never answered")
            if sig == signal.SIGTERM:
                # the spec's quick start works with no worker of one's own: the server demo answers,
                # from the API's first answer on (the clip waits while the demo worker starts)
                key = requests.post(f"http://127.0.0.1:{port}/v1/keys", json={}, timeout=5).json()["key"]
                clip = load_corpus()["greet"]
                response = transcribe(port, key, clip["path"].read_bytes())
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["processed_by"] == "server_demo"
                assert character_error_rate(clip["text"], body["text"]) < 0.15
            deadline = time.monotonic() + 15
            while len(children_of(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            family = children_of(proc.pid)
            assert len(family) == 2, "gunicorn and the demo worker run as children"
            family += [grandchild for child in family for grandchild in children_of(child)]
            proc.send_signal(sig)
            assert proc.wait(timeout=45) == 0
            time.sleep(0.5)
            assert not [pid for pid in family if os.path.exists(f"/proc/{pid}")], "a child outlived serve"
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
        finally:
            if proc.poll() is None:  # a failed assertion: leave no gunicorn or worker behind
                for pid in [grandchild for child in children_of(proc.pid) for grandchild in children_of(child)]:
                    os.kill(pid, signal.SIGKILL)
                for pid in children_of(proc.pid):
                    os.kill(pid, signal.SIGKILL)
                proc.kill()


def test_serve_that_cannot_reach_its_cache_says_so_and_leaves_nothing_running():
    """An operator's typo in JPT_CACHE_URL: the API never answers 200, and `serve` gives up saying
    what /v1/health said, rather than only "see the log"."""
    port = free_port()
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "JPT_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "jptranscribe.settings",
               "XDG_CACHE_HOME": var, "JPT_CACHE_URL": f"redis://127.0.0.1:{free_port()}/0"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--no-demo-worker"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                for pid in [grandchild for child in children_of(proc.pid) for grandchild in children_of(child)]:
                    os.kill(pid, signal.SIGKILL)
                proc.kill()
        assert proc.returncode == 1
        assert "The API did not come up (/v1/health said: 503" in output and "service_unavailable" in output
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)

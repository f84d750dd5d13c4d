"""`make run`'s process: serves the API and stops cleanly with all its children."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.live import ROOT, free_port

pytestmark = pytest.mark.slow


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_with_all_its_children(sig):
    port = free_port()
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "JPT_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "jptranscribe.settings"}
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
            family = children_of(proc.pid)
            assert family, "gunicorn runs as a child"
            family += [grandchild for child in family for grandchild in children_of(child)]
            proc.send_signal(sig)
            assert proc.wait(timeout=45) == 0
            time.sleep(0.5)
            assert not [pid for pid in family if os.path.exists(f"/proc/{pid}")], "a child outlived serve"
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
        finally:
            if proc.poll() is None:
                proc.kill()

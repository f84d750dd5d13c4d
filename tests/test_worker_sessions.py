"""The worker client against the real server when its registration, its lease or its result goes
wrong: it never throws a finished transcript away, and says plainly when it had to."""
import logging
import os
import time
from types import SimpleNamespace

import pytest

from tests.clips import wav_bytes
from tests.live import LiveServer
from worker_client.client import ServerClient
from worker_client.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def server():
    # Registrations run out after 2 s and nothing renews them on its own: a worker busy with a
    # clip for longer comes back to a server that no longer knows it.
    env = {"JPT_WORKER_TTL_SECONDS": "2", "JPT_HEARTBEAT_INTERVAL_SECONDS": "60"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, threads=16, env=env) as live:
        yield live


class StandInEngine:
    """Takes `seconds` over a clip and returns `text`: the worker's protocol is under test, not speech."""

    name, model_name = "stand-in", "stand-in"

    def __init__(self, text="こんにちは", seconds=0.0):
        self.text, self.seconds = text, seconds

    def transcribe(self, data, max_seconds=None):
        time.sleep(self.seconds)
        return SimpleNamespace(text=self.text, segments=[{"start": 0, "end": 1, "text": self.text}], model="stand-in")


def worker_with_job(server, engine, worker_id="sessions-w1"):
    key = server.mint_key()
    worker = Worker(ServerClient(server.url, key, worker_id), engine, name="test")
    worker.register()
    job_id = server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
    job = worker.client.claim(wait_seconds=5)
    assert job["id"] == job_id
    return key, worker, job


def status(server, key, job_id):
    return server.get(f"/v1/transcriptions/{job_id}", key).json()


def test_a_worker_the_server_forgot_registers_again_and_delivers(server, caplog):
    key, worker, job = worker_with_job(server, StandInEngine(seconds=3.5))
    caplog.set_level(logging.INFO, logger="worker")
    worker.process(job)  # registration runs out mid-clip: completion answers worker_not_registered
    assert "registering again" in caplog.text
    done = status(server, key, job["id"])
    assert done["status"] == "completed" and done["text"] == "こんにちは"


def test_a_lost_lease_is_one_line_and_the_worker_goes_on(server, caplog):
    key, worker, job = worker_with_job(server, StandInEngine(), "sessions-w2")
    # The same worker id started again elsewhere: the server hands the job back to the queue.
    ServerClient(server.url, key, "sessions-w2").heartbeat(name="again", engine="x", model="x")
    caplog.set_level(logging.INFO, logger="worker")
    worker.process(job)
    about_the_job = [r for r in caplog.records if job["id"] in r.getMessage()]
    assert [r.getMessage() for r in about_the_job][-1].startswith(f"{job['id']}: lease lost")
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert status(server, key, job["id"])["status"] == "queued"
    assert worker.client.claim(wait_seconds=2)["id"] == job["id"], "the worker takes the next job"


def test_a_refused_result_fails_the_job_at_once_instead_of_retrying(server, caplog):
    key, worker, job = worker_with_job(server, StandInEngine(text="あ" * 2000), "sessions-w3")
    caplog.set_level(logging.INFO, logger="worker")
    started = time.monotonic()
    worker.process(job)
    assert time.monotonic() - started < 3, "a 400 is not retried"
    assert "refused the result" in caplog.text
    assert status(server, key, job["id"])["status"] == "queued", "given back for another try"

"""The worker client against the real server when its registration, its lease or its result goes
wrong: it never throws a finished transcript away, and says plainly when it had to."""
import logging
import os
import threading
import time

import pytest
import requests

from tests.clips import wav_bytes
from tests.live import LiveServer
from worker_client.client import ServerClient
from worker_client.engines import Result, Stopped
from worker_client.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def server():
    # Registrations run out after 2 s and nothing renews them on its own: a worker busy with a
    # clip for longer comes back to a server that no longer knows it.
    env = {"JPT_WORKER_TTL_SECONDS": "2", "JPT_HEARTBEAT_INTERVAL_SECONDS": "60"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, env=env) as live:
        yield live


class StandInEngine:
    """Takes `seconds` over a clip and returns `text` (with timed words and a warning), recording what
    it was asked: the worker's protocol is under test, not speech."""

    name, model_name = "stand-in", "stand-in"

    def __init__(self, text="こんにちは", seconds=0.0):
        self.text, self.seconds, self.asked = text, seconds, None

    def transcribe(self, data, **asked):
        self.asked = asked
        time.sleep(self.seconds)
        words = [{"word": self.text, "start": 0.1, "end": 0.9}]
        return Result(self.text, [{"start": 0, "end": 1, "text": self.text, "words": words}], "stand-in",
                      warnings=["prompt ignored: this engine takes no prompt"])


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


def test_a_job_its_owner_cancels_is_one_line_for_the_worker_which_goes_on(server, caplog):
    key, worker, job = worker_with_job(server, StandInEngine(), "sessions-w4")
    cancelled = requests.delete(f"{server.url}/v1/transcriptions/{job['id']}",
                                headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    caplog.set_level(logging.INFO, logger="worker")
    worker.process(job)
    about_the_job = [r for r in caplog.records if job["id"] in r.getMessage()]
    assert [r.getMessage() for r in about_the_job][-1].startswith(f"{job['id']}: lease lost")
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert status(server, key, job["id"])["status"] == "cancelled"
    next_id = server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
    assert worker.client.claim(wait_seconds=2)["id"] == next_id, "the worker takes the next job"


def test_a_refused_result_fails_the_job_at_once_instead_of_retrying(server, caplog):
    key, worker, job = worker_with_job(server, StandInEngine(text="あ" * 2000), "sessions-w3")
    caplog.set_level(logging.INFO, logger="worker")
    started = time.monotonic()
    worker.process(job)
    assert time.monotonic() - started < 3, "a 400 is not retried"
    assert "refused the result" in caplog.text
    assert status(server, key, job["id"])["status"] == "queued", "given back for another try"


def test_the_callers_options_reach_the_engine_and_its_words_and_warnings_come_back(server):
    """Through OpenAI's call: the prompt, temperature and word timings asked for go with the job to
    the worker's engine; the words and the engine's warning come back in the answer."""
    key = server.mint_key()
    engine = StandInEngine()
    worker = Worker(ServerClient(server.url, key, "sessions-w4"), engine, name="test")
    worker.register()
    answer = {}

    def call():
        answer["response"] = requests.post(
            f"{server.url}/v1/audio/transcriptions", headers={"Authorization": f"Bearer {key}"},
            files={"file": ("a.wav", wav_bytes(2))}, timeout=60,
            data={"model": "whisper-1", "prompt": "配信の挨拶", "temperature": "0.2",
                  "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})

    caller = threading.Thread(target=call)
    caller.start()
    job, deadline = None, time.monotonic() + 30
    while job is None and time.monotonic() < deadline and (caller.is_alive() or "response" not in answer):
        worker.register()  # registrations last 2 s here
        job = worker.client.claim(wait_seconds=3)
    assert job is not None, answer["response"].text if "response" in answer else "the call never queued its job"
    assert job["options"] == {"prompt": "配信の挨拶", "temperature": 0.2, "word_timestamps": True}
    worker.process(job)
    caller.join()
    assert engine.asked["prompt"] == "配信の挨拶" and engine.asked["word_timestamps"] is True
    body = answer["response"].json()
    assert body["words"] == [{"word": "こんにちは", "start": 0.1, "end": 0.9}]
    assert body["warnings"] == ["prompt ignored: this engine takes no prompt"]


@pytest.fixture(scope="module")
def quick_server():
    # Claims answer after 1 s and heartbeats are due every second; a registration lasts 8 s, and a
    # pool call renews it at most every 5 s (pool.workers.SEEN_GRANULARITY_SECONDS).
    env = {"JPT_WORKER_TTL_SECONDS": "8", "JPT_HEARTBEAT_INTERVAL_SECONDS": "1", "JPT_CLAIM_WAIT_MAX_SECONDS": "1"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, env=env) as live:
        yield live


class CountingWorker(Worker):
    """Counts the heartbeats it sends while online."""

    beats = 0

    def heartbeat(self, online=True):
        self.beats += online
        return super().heartbeat(online)


def test_an_idle_worker_whose_claims_keep_going_sends_no_heartbeats_and_stays_registered(quick_server):
    key = quick_server.mint_key()
    worker = CountingWorker(ServerClient(quick_server.url, key, "idle-w1"), StandInEngine(seconds=3), name="test")
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    try:
        time.sleep(12)  # longer than the registration: only the claims renew it
        assert worker.beats == 1, "the registration, then no heartbeat while it only claims"
        assert quick_server.get("/v1/account", key).json()["worker_online"] is True
        job_id = quick_server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
        deadline = time.monotonic() + 20
        while status(quick_server, key, job_id)["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status(quick_server, key, job_id)["text"] == "こんにちは", "still registered: its job got done"
        assert worker.beats >= 3, "holding the job for 3 s, it beat every second to keep its lease"
    finally:
        worker.stopping.set()
        running.join(30)
    assert worker.fatal is None


class ClaimCountingWorker(Worker):
    """The worker client as it is, counting the claims (real requests) that brought it a job."""

    jobs_from_claims = 0

    def _claim(self):
        job = super()._claim()
        self.jobs_from_claims += job is not None
        return job


def test_a_busy_worker_takes_its_next_job_from_the_completion_not_a_claim(server):
    key = server.db_key()  # the module's other tests mint as many keys as one address may a day
    worker = ClaimCountingWorker(ServerClient(server.url, key, "busy-w1"), StandInEngine(), name="test")
    worker.register()  # online, so its key's clips wait for it
    job_ids = [server.transcribe(key, wav_bytes(1 + i), wait=False).json()["id"] for i in range(3)]
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(status(server, key, j)["status"] != "completed" for j in job_ids):
            time.sleep(0.2)
        assert [status(server, key, j)["text"] for j in job_ids] == ["こんにちは"] * 3
        assert worker.jobs_from_claims == 1, "the second and third came with the completions before them"
    finally:
        worker.stopping.set()
        running.join(30)
    assert worker.fatal is None and not worker.holding


class EagerWorker(CountingWorker, ClaimCountingWorker):
    """Counts its heartbeats, due every half second (the server here says every minute), and its claims."""

    def register(self):
        return {**super().register(), "heartbeat_interval_seconds": 0.5}


def test_an_idle_worker_waits_for_its_next_job_in_its_completion_and_ctrl_c_ends_that_wait_at_once(server):
    key = server.db_key()
    worker = EagerWorker(ServerClient(server.url, key, "idle-next-w1"), StandInEngine(), name="test")
    worker.register()
    first = server.transcribe(key, wav_bytes(1), wait=False).json()["id"]
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    try:
        until(lambda: status(server, key, first)["status"] == "completed")
        time.sleep(1)  # nothing queued: the completion waits for the next job
        second = server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
        until(lambda: status(server, key, second)["status"] == "completed", seconds=5)
        assert worker.jobs_from_claims == 1, "the second clip went to the completion waiting after the first"
        beats = worker.beats
        time.sleep(2)  # the second's completion waits in turn
        assert worker.beats == beats, "a completion waiting for the next job stands for heartbeats, as a claim"
        stopped_at = time.monotonic()
        worker.stopping.set()  # what Ctrl-C does
        running.join(10)
        assert not running.is_alive() and time.monotonic() - stopped_at < 3
    finally:
        worker.stopping.set()
        running.join(30)
    assert worker.fatal is None and not worker.holding
    assert status(server, key, second)["text"] == "こんにちは"
    assert server.get("/v1/account", key).json()["worker_online"] is False, "signed off"


def until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


class StoppableEngine(StandInEngine):
    """Takes `seconds` over its first clip unless told to stop, as the real engines are between
    their chunks or segments; the clips after it take no time."""

    def __init__(self, seconds):
        super().__init__(seconds=seconds)
        self.started, self.stopped = threading.Event(), threading.Event()

    def transcribe(self, data, should_stop=None, **asked):
        deadline = time.monotonic() + self.seconds
        self.seconds = 0
        self.started.set()
        while time.monotonic() < deadline:
            if should_stop is not None and should_stop():
                self.stopped.set()
                raise Stopped("stopped before the end of the clip")
            time.sleep(0.05)
        return super().transcribe(data, **asked)


def test_a_worker_stops_transcribing_a_job_its_owner_cancelled_and_takes_the_next(quick_server, caplog):
    """The heartbeat's `leases_lost` names the cancelled job's lease: the engine stops there, instead
    of keeping the worker (and its owner's next clip) busy until the end of the clip."""
    key = quick_server.mint_key()
    engine = StoppableEngine(seconds=60)
    worker = Worker(ServerClient(quick_server.url, key, "stops-w1"), engine, name="test")
    worker.register()
    cancelled = quick_server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
    caplog.set_level(logging.INFO, logger="worker")
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    try:
        assert engine.started.wait(10)
        gone = requests.delete(f"{quick_server.url}/v1/transcriptions/{cancelled}",
                               headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        assert engine.stopped.wait(10), "still transcribing a cancelled job"
        until(lambda: f"{cancelled}: lease lost" in caplog.text)
        following = quick_server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
        until(lambda: status(quick_server, key, following)["status"] == "completed")
    finally:
        worker.stopping.set()
        running.join(30)


def test_a_second_ctrl_c_hands_the_job_back_without_failing_it(quick_server):
    """The volunteer stopped, not the job: it goes back to the queue as a worker signing off leaves
    it (abandoned), not as a failure held against the clip and the worker's key."""
    key = quick_server.mint_key()
    engine = StoppableEngine(seconds=60)
    worker = Worker(ServerClient(quick_server.url, key, "ctrl-c-w1"), engine, name="test")
    worker.register()
    # Another worker of the key stays online, so the job handed back waits for it.
    ServerClient(quick_server.url, key, "ctrl-c-w2").heartbeat(name="other", engine="x", model="x")
    job_id = quick_server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
    outcome = {}
    running = threading.Thread(target=lambda: outcome.update(code=worker.run()), daemon=True)
    running.start()
    assert engine.started.wait(10)
    worker._on_signal(2, None)  # Ctrl-C
    worker._on_signal(2, None)  # and again: hand it back now
    running.join(30)
    assert outcome["code"] == 0 and engine.stopped.is_set()
    assert status(quick_server, key, job_id)["status"] == "queued"
    told = quick_server.manage("shell", "-c", "from pool.models import JobAttempt, Worker; "
                               f"print(list(JobAttempt.objects.filter(job_id='{job_id}').values_list('outcome', flat=True)), "
                               "Worker.objects.get(client_id='ctrl-c-w1').jobs_failed)")
    assert told.stdout.strip().splitlines()[-1] == "['abandoned'] 0"


def test_a_claim_the_server_turns_away_says_why_not_that_the_server_is_unreachable(server):
    """A 429 is the server answering: the worker's line gives its reason (here the key's one place
    to wait is taken), not "Cannot reach the server"."""
    from worker_client.client import Retryable

    key = server.db_key()  # the module's server has minted its five keys for this address today
    worker = Worker(ServerClient(server.url, key, "turned-away-w1"), StandInEngine(), name="test")
    refusals, refused = [], threading.Event()

    def claim_until_one_is_turned_away():
        """Two of these: whichever claim comes second while the other waits is turned away."""
        client = ServerClient(server.url, key, "turned-away-w1")
        while not refused.is_set():
            worker.register()  # registrations last 2 s here
            try:
                client.claim(2)
            except Retryable as turned_away:
                refusals.append(turned_away)
                refused.set()

    claimers = [threading.Thread(target=claim_until_one_is_turned_away, daemon=True) for _ in range(2)]
    for claimer in claimers:
        claimer.start()
    assert refused.wait(30), "no claim was turned away"
    for claimer in claimers:
        claimer.join(10)
    turned_away = refusals[0]
    assert "429" in str(turned_away) and "claims waiting" in str(turned_away)
    assert turned_away.answered, "logged as the server turning the claim away, not as unreachable"

"""A waiting transcribe call when PostgreSQL drops its connections or Redis goes away (a restart, a
failover): its job is stored by then, so the call keeps it, rather than answering 500 and having
the caller send the clip again."""
import shutil
import subprocess
import time

import psycopg
import pytest
import redis
from django.db import close_old_connections, connection

from jptranscribe.waiting import release_connection
from pool.models import Job
from pool.wakeup import conninfo
from tests.clips import wav_bytes
from transcription import services
from tests.live import free_port
from transcription.intake import check_audio


@pytest.fixture
def restarts(db):
    """Afterwards the pool's dead connections are gone, as the next requests would find them."""
    if connection.vendor != "postgresql":
        pytest.skip("a database server's restart: SQLite has none")
    yield drop_every_connection
    connection.close()
    connection.pool.check()


def drop_every_connection():
    """What a PostgreSQL restart does to the app server: every session of its database ends,
    the idle ones in its connection pool among them."""
    with psycopg.connect(**conninfo(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def resumed(steps, woken):
    """The rest of a waiting call's steps, sleeping at each wait as the server would."""
    try:
        wait = steps.send(woken)
        while True:
            release_connection()
            wait = steps.send(wait.waiter.wait(wait.timeout))
    except StopIteration as done:
        return done.value


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_waiting_call_whose_connections_drop_still_answers_with_its_job(alice, restarts):
    alice.heartbeat()  # her own worker: the clip is hers to run (pool_self)
    steps = services.transcription_submit_and_wait_steps(
        key=alice.key, audio=check_audio(wav_bytes(2.0)), translate=False, ip=alice.ip, timeout=10
    )
    waiting = next(steps)  # queued; the call now waits for it
    job_id = waiting.subject.pk
    release_connection()
    held = alice.claim().json()["job"]
    assert held["id"] == job_id
    assert alice.complete(held, text="こんにちは").status_code == 200
    release_connection()

    restarts()
    job = resumed(steps, True)

    assert job.pk == job_id and job.status == Job.Status.COMPLETED and job.text == "こんにちは"
    assert Job.objects.filter(key=alice.key).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_call_whose_database_stays_away_answers_with_its_job_as_last_seen(alice, restarts, monkeypatch):
    """Its id, to poll once the database is back (202), instead of a 500 that loses it."""
    alice.heartbeat()
    steps = services.transcription_submit_and_wait_steps(
        key=alice.key, audio=check_audio(wav_bytes(2.0)), translate=False, ip=alice.ip, timeout=2
    )
    job_id = next(steps).subject.pk
    release_connection()

    def database_away(job):
        connection.ensure_connection()
        restarts()  # every look's connection ends under it
        return Job.objects.get(pk=job.pk)  # on a connection that has just been ended

    monkeypatch.setattr(services.pool, "job_reload", database_away)
    job = resumed(steps, True)

    assert job.pk == job_id and job.status == Job.Status.QUEUED


@pytest.fixture
def own_redis(settings):
    """The shared cache on a Redis of the test's own, which the test can stop."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    shared = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "jptranscribe.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    yield server
    settings.CACHES = shared  # before the suite's own clean-up, which clears the cache
    server.kill()
    server.wait()


@pytest.mark.django_db(transaction=True)
def test_a_waiting_call_whose_cache_goes_away_still_answers_with_its_job(alice, own_redis):
    alice.heartbeat()
    steps = services.transcription_submit_and_wait_steps(
        key=alice.key, audio=check_audio(wav_bytes(2.0)), translate=False, ip=alice.ip, timeout=10
    )
    job_id = next(steps).subject.pk  # it holds places to wait, counted in the cache
    release_connection()
    held = alice.claim().json()["job"]
    assert alice.complete(held, text="こんにちは").status_code == 200

    own_redis.terminate()
    own_redis.wait()
    # Its look asks the cache whose turn the pool's upkeep is (every look, in tests), and its end
    # gives its places back there.
    job = resumed(steps, True)

    assert job.pk == job_id and job.status == Job.Status.COMPLETED and job.text == "こんにちは"


def assert_outage(response):
    """A request that met the outage is told so, and when to try again (503, as OpenAI's API has it)."""
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.json()["error"]["type"] == "service_unavailable_error"
    assert response["Retry-After"] == "5"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_that_meets_a_dropped_database_connection_is_told_to_retry_and_the_retry_works(alice, restarts):
    alice.client.raise_request_exception = False
    assert alice.get("/v1/account").status_code == 200
    restarts()
    answers = []
    while not answers or answers[-1].status_code != 200:  # each dead connection in the pool meets one request
        assert len(answers) <= connection.pool.max_size, [answer.status_code for answer in answers]
        answers.append(alice.get("/v1/account"))
        close_old_connections()  # what the server does at each request's end (the test client does not)
    assert_outage(answers[0])
    assert {answer.status_code for answer in answers[:-1]} == {503}


@pytest.mark.django_db(transaction=True)
def test_a_request_while_the_cache_is_away_is_told_to_retry(alice, own_redis):
    alice.client.raise_request_exception = False
    assert alice.get("/v1/account").status_code == 200
    own_redis.terminate()
    own_redis.wait()
    assert_outage(alice.get("/v1/account"))

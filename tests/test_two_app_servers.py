"""Two app servers on one PostgreSQL (and one shared cache), as a scaled-out deployment runs:
a job submitted through one is done through the other, limits count across both, and a
server that dies loses nothing another can serve."""
import concurrent.futures
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.clips import wav_bytes
from tests.live import ROOT, LiveServer, _pg_admin

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ENV = {"SECRET_KEY": "one-secret-for-both-nodes", "JPT_TRANSCRIBE_WAIT_SECONDS": "60", "JPT_RATE_WORKER": "100000/m",
       "JPT_MIN_SECONDS_PER_AUDIO_SECOND": "0"}  # the stand-in volunteer answers at once


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def call(server, method, path, key, **kw):
    return requests.request(method, server.url + path, headers=bearer(key), timeout=kw.pop("timeout", 30), **kw)


def claim(server, key, worker_id="volunteer"):
    answer = call(server, "POST", "/v1/pool/claim", key,
                  json={"worker_id": worker_id, "wait_seconds": 20, "inline_audio": True})
    assert answer.status_code == 200, answer.text
    return answer.json()["job"]


def complete(server, key, job, text, worker_id="volunteer"):
    answer = call(server, "POST", f"/v1/pool/jobs/{job['id']}/complete", key,
                  json={"worker_id": worker_id, "lease_id": job["lease_id"], "text": text, "model": "stand-in"})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def nodes():
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("several app servers share a PostgreSQL; SQLite is one node")
    with LiveServer(database_url=os.environ["DATABASE_URL"], env=ENV) as a:
        with LiveServer.beside(a, database_url=os.environ["DATABASE_URL"], env=ENV) as b:
            yield a, b


@pytest.fixture(scope="module")
def keys(nodes):
    """Five keys, minted through both servers: the sixth from this address is refused by either."""
    a, b = nodes
    minted = [(a, b)[i % 2].mint_key() for i in range(5)]
    refused = requests.post(b.url + "/v1/keys", json={}, timeout=10)
    assert refused.status_code == 429, "the keys-per-IP quota counts across both servers"
    for key in minted[:2]:
        a.manage("credits", "grant", key, "100", "--reason", "test")
    a.manage("trust", "grant", minted[2])  # the volunteer: its results are delivered, not held for a check
    return minted


def test_a_clip_sent_to_one_server_is_done_through_the_other(nodes, keys):
    a, b = nodes
    caller, volunteer = keys[0], keys[2]
    assert call(b, "POST", "/v1/worker/heartbeat", volunteer, json={"worker_id": "volunteer"}).status_code == 200
    answer = {}
    waiting = threading.Thread(target=lambda: answer.update(r=a.transcribe(caller, wav_bytes(2))))
    waiting.start()
    job = claim(b, volunteer)
    complete(b, volunteer, job, "ふたつのサーバー")
    waiting.join(timeout=60)
    assert answer["r"].status_code == 200, answer["r"].text
    assert answer["r"].json()["text"] == "ふたつのサーバー", "the wait on A was woken by the completion on B"


def test_a_completion_waiting_on_one_server_is_handed_the_clip_sent_to_the_other(nodes, keys):
    a, b = nodes
    caller, volunteer = keys[0], keys[2]
    assert call(b, "POST", "/v1/worker/heartbeat", volunteer, json={"worker_id": "volunteer"}).status_code == 200
    first = a.transcribe(caller, wav_bytes(1), wait=False).json()["id"]
    job = claim(b, volunteer)
    assert job["id"] == first
    body = {"worker_id": "volunteer", "lease_id": job["lease_id"], "text": "一つ目", "model": "stand-in",
            "claim_next": True, "wait_seconds": 20, "inline_audio": True}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        completing = pool.submit(call, b, "POST", f"/v1/pool/jobs/{first}/complete", volunteer, json=body, timeout=60)
        time.sleep(1.5)
        assert not completing.done(), "nothing queued: the completion waits on B"
        second = a.transcribe(caller, wav_bytes(2), wait=False).json()["id"]
        answer = completing.result()
    assert answer.status_code == 200, answer.text
    next_job = answer.json()["next_job"]
    assert next_job is not None and next_job["id"] == second, "the clip queued through A woke the wait on B"
    complete(b, volunteer, next_job, "二つ目")
    assert call(a, "GET", f"/v1/transcriptions/{second}", caller).json()["text"] == "二つ目"


def test_a_keys_rate_limit_counts_across_both_servers(nodes, keys):
    a, b = nodes
    for attempt in (1, 2):
        key = keys[3 + attempt - 1]
        answers = [call((a, b)[i % 2], "GET", "/v1/account", key) for i in range(31)]
        remaining = [int(r.headers.get("X-RateLimit-Remaining", -1)) for r in answers]
        if attempt == 1 and any(later > earlier for earlier, later in zip(remaining, remaining[1:])):
            continue  # a one-minute window ended during the run: count again with another key
        break
    assert [r.status_code for r in answers] == [200] * 30 + [429], remaining


def test_a_server_killed_while_its_caller_waits_loses_nothing(nodes, keys):
    a, b = nodes
    caller, volunteer = keys[1], keys[2]
    assert call(b, "POST", "/v1/worker/heartbeat", volunteer, json={"worker_id": "volunteer"}).status_code == 200
    lost = {}

    def wait_on_a():
        try:
            a.transcribe(caller, wav_bytes(2), timeout=60)
        except requests.RequestException as exc:
            lost["error"] = exc

    waiting = threading.Thread(target=wait_on_a)
    waiting.start()
    job = claim(b, volunteer)  # the job is stored: the server it came through may go now
    a.kill()
    waiting.join(timeout=30)
    assert "error" in lost, "the caller's connection to A died with it"
    complete(b, volunteer, job, "生き残った")
    result = call(b, "GET", f"/v1/transcriptions/{job['id']}", caller)
    assert result.status_code == 200 and result.json()["status"] == "completed"
    assert result.json()["text"] == "生き残った"
    balance = call(b, "GET", "/v1/account", caller).json()["credits_seconds"]
    assert balance == 98.0, "charged once, for the one clip"


def test_app_servers_started_together_on_a_new_database_migrate_one_after_the_other():
    """Each node's `make run` migrates first: two at once on an empty database used to create the
    same tables, and the second failed."""
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("several app servers share a PostgreSQL; SQLite is one node")
    url = os.environ["DATABASE_URL"]
    name = f"jpt_migrate_{os.getpid()}"
    _pg_admin(f'CREATE DATABASE "{name}"', url)
    import psycopg

    from pool.management.commands.migrate import MIGRATE_LOCK

    database_url = url.rsplit("/", 1)[0] + "/" + name
    try:
        # A third node is migrating: both start while it holds the lock, so they meet for certain.
        with psycopg.connect(database_url, autocommit=True) as third:
            third.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
            nodes = [subprocess.Popen([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT,
                                      env={**os.environ, "DATABASE_URL": database_url}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for _ in range(2)]
            deadline = time.monotonic() + 120
            while third.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                ).fetchone()[0] < 2:
                assert time.monotonic() < deadline and all(node.poll() is None for node in nodes)
                time.sleep(0.05)
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
        assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
        assert all("waiting for it to finish" in output for output in outputs)
        assert sum("No migrations to apply" in output for output in outputs) == 1
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', url)

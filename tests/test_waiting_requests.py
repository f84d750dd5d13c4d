"""Waiting requests (long-polled claims, transcribe calls waiting for their text) on the real
server: they hold no thread while they wait, give their places back when the client goes away,
and answer at once when the server is told to stop."""
import concurrent.futures
import os
import signal
import socket
import time

import pytest
import requests

from tests.clips import wav_bytes
from tests.live import LiveServer, children_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def register(server, key, *worker_ids):
    for worker_id in worker_ids:
        answer = requests.post(f"{server.url}/v1/worker/heartbeat", json={"worker_id": worker_id},
                               headers=bearer(key), timeout=10)
        assert answer.status_code == 200, answer.text


def claim(server, key, worker_id, wait_seconds):
    return requests.post(f"{server.url}/v1/pool/claim", json={"worker_id": worker_id, "wait_seconds": wait_seconds},
                         headers=bearer(key), timeout=60)


@pytest.fixture
def server():
    env = {"JPT_CLAIMS_WAITING_PER_KEY": "1000", "JPT_RATE_WORKER": "100000/m"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, env=env) as live:
        yield live


def test_waiting_claims_hold_no_server_thread(server):
    key = server.mint_key()
    register(server, key, *[f"w{i}" for i in range(150)])
    (process,) = children_of(server.proc.pid)
    idle = threads_of(process)
    with concurrent.futures.ThreadPoolExecutor(max_workers=150) as pool:
        polls = [pool.submit(claim, server, key, f"w{i}", 8) for i in range(150)]
        time.sleep(3)
        waiting = threads_of(process)
        assert not any(p.done() for p in polls), "measured while every claim still waited"
        assert all(p.result().json() == {"job": None} for p in polls)
    assert waiting < idle + 20, f"{waiting} threads with 150 claims waiting, {idle} without"


def test_a_claim_whose_client_went_away_gives_its_place_back(server):
    """A key has as many claims waiting as its workers run jobs (one here): a claim abandoned by
    its client frees that place at once, not when its wait would have ended."""
    key = server.mint_key()
    register(server, key, "w1")
    body = b'{"worker_id": "w1", "wait_seconds": 25}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/pool/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        time.sleep(1)
        assert claim(server, key, "w1", 1).status_code == 429, "the first claim holds the key's one place"
    time.sleep(1)
    answer = claim(server, key, "w1", 1)
    assert answer.status_code == 200 and answer.json() == {"job": None}, answer.text


def test_a_completion_waiting_for_the_next_job_is_handed_one_that_arrives_meanwhile(server):
    """An idle worker's claim folded into its completion: the result is in before the wait, and a
    clip sent during the wait goes to it at once, leased as a claim's."""
    key = server.mint_key()
    register(server, key, "w1")  # the key's own worker, online: its clips wait for it
    first = server.transcribe(key, wav_bytes(1), wait=False).json()["id"]
    job = claim(server, key, "w1", 5).json()["job"]
    assert job["id"] == first
    body = {"worker_id": "w1", "lease_id": job["lease_id"], "text": "一つ目", "model": "test",
            "claim_next": True, "wait_seconds": 20, "inline_audio": True}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        completing = pool.submit(requests.post, f"{server.url}/v1/pool/jobs/{first}/complete", json=body,
                                 headers=bearer(key), timeout=60)
        time.sleep(1.5)
        assert not completing.done(), "nothing queued: the completion waits"
        assert server.get(f"/v1/transcriptions/{first}", key).json()["text"] == "一つ目"
        sent_at = time.monotonic()
        second = server.transcribe(key, wav_bytes(2), wait=False).json()["id"]
        answer = completing.result()
        handed_in = time.monotonic() - sent_at
    assert answer.status_code == 200, answer.text
    next_job = answer.json()["next_job"]
    assert next_job["id"] == second and next_job["audio_base64"], next_job
    assert handed_in < 3, handed_in
    assert server.get(f"/v1/transcriptions/{second}", key).json()["status"] == "processing"


def test_on_sigterm_waiting_calls_answer_at_once(server):
    caller, volunteer = server.mint_key(), server.mint_key()
    register(server, caller, "own")  # the caller's own worker is online (and not claiming): its clip waits
    register(server, volunteer, "v1")  # another key's worker, waiting for work it may take
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        waiting_claim = pool.submit(claim, server, volunteer, "v1", 25)
        transcribe = pool.submit(requests.post, f"{server.url}/v1/transcribe", headers=bearer(caller),
                                 files={"file": ("a.wav", wav_bytes(1))}, timeout=60)
        time.sleep(2)
        assert not waiting_claim.done() and not transcribe.done()
        stopped_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        claimed, transcribed = waiting_claim.result(), transcribe.result()
        answered_in = time.monotonic() - stopped_at
    assert claimed.status_code == 200 and claimed.json() == {"job": None}
    assert transcribed.status_code == 202 and transcribed.json()["status"] == "queued", transcribed.text
    assert answered_in < 5, answered_in
    server.proc.wait(timeout=30)


def test_a_visitor_waits_for_its_demo_clip_through_the_browser_proxy(server):
    """The pages' transcribe waits as /v1's does: the answer comes when the demo worker completes
    the clip, and this browser may read it afterwards (and no other)."""
    demo = server.db_key(is_server=True)
    register(server, demo, "demo")
    visitor = requests.Session()
    visitor.get(f"{server.url}/get-key/", timeout=10)
    headers = {"X-CSRFToken": visitor.cookies["csrftoken"], "Referer": f"{server.url}/"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(visitor.post, f"{server.url}/api/v1/transcribe", headers=headers,
                              files={"file": ("a.wav", wav_bytes(1))}, timeout=60)
        job = claim(server, demo, "demo", 10).json()["job"]
        assert not waiting.done(), "the visitor's call waits for the text"
        done = {"worker_id": "demo", "lease_id": job["lease_id"], "text": "こんにちは", "segments": [], "model": "m"}
        requests.post(f"{server.url}/v1/pool/jobs/{job['id']}/complete", json=done, headers=bearer(demo),
                      timeout=10).raise_for_status()
        answer = waiting.result()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == "こんにちは" and body["processed_by"] == "server_demo"
    assert answer.headers["X-Frame-Options"] == "DENY", "the middleware's headers reach the late answer"
    status_url = f"{server.url}/api/v1/transcriptions/{body['id']}"
    assert visitor.get(status_url, timeout=10).json()["status"] == "completed"
    assert requests.get(status_url, timeout=10).status_code == 404, "another browser sees nothing"

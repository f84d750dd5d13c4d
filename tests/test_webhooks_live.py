"""Webhooks from the real server: the delivery loop runs in the app server's processes, and an
event outlives a receiver that is down and an app server that restarts."""
import os
import time

import pytest
import requests

from tests.clips import wav_bytes
from tests.live import LiveServer, free_port
from tests.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def server():
    env = {
        "JPT_URL_FETCH_ALLOW_HTTP": "true",
        "JPT_URL_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
        "JPT_WEBHOOK_RETRY_SECONDS": "1,1,1,1,1,1,1,1,1,1",
        "JPT_WEBHOOK_POLL_SECONDS": "0.2",
    }
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=2, env=env) as live:
        yield live


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def transcribed_with_webhook(server, url):
    """A key with a signing secret sends a clip naming `url`, and its own worker transcribes it."""
    key = server.mint_key()
    secret = requests.post(f"{server.url}/v1/webhook-secret", headers=bearer(key), timeout=10).json()["secret"]
    worker = requests.Session()
    worker.headers.update(bearer(key))
    worker.post(f"{server.url}/v1/worker/heartbeat", json={"worker_id": "w1"}, timeout=10).raise_for_status()
    sent = requests.post(f"{server.url}/v1/transcribe", headers={**bearer(key), "Prefer": "respond-async"},
                         files={"file": ("a.wav", wav_bytes(1))}, data={"webhook_url": url}, timeout=30)
    assert sent.status_code == 202, sent.text
    job = worker.post(f"{server.url}/v1/pool/claim", json={"worker_id": "w1", "wait_seconds": 5}, timeout=30).json()
    job = job["job"]
    done = worker.post(f"{server.url}/v1/pool/jobs/{job['id']}/complete",
                       json={"worker_id": "w1", "lease_id": job["lease_id"], "text": "届きました。",
                             "model": "stand-in"}, timeout=10)
    assert done.status_code == 200, done.text
    return key, secret, job["id"]


def webhook_state(server, key, job_id):
    return server.get(f"/v1/transcriptions/{job_id}", key).json()["webhook"]


def test_a_receiver_that_fails_twice_gets_the_event_from_the_app_servers_loop(server):
    with Receiver(answers=[500, 500]) as receiver:
        key, secret, job_id = transcribed_with_webhook(server, receiver.url)
        deliveries = receiver.wait_for(3, timeout=30)
        assert [d.answered for d in deliveries] == [500, 500, 200]
        assert len({d.headers["webhook-id"] for d in deliveries}) == 1
        event = deliveries[-1].verified(secret)
        assert event["type"] == "transcription.completed" and event["data"]["text"] == "届きました。"
        time.sleep(1.5)
        assert len(receiver.deliveries) == 3  # delivered once
        assert webhook_state(server, key, job_id)["status"] == "delivered"


def test_an_event_outlives_a_receiver_that_is_down_and_an_app_server_restart(server):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    key, secret, job_id = transcribed_with_webhook(server, url)
    deadline = time.monotonic() + 20
    while webhook_state(server, key, job_id)["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    state = webhook_state(server, key, job_id)
    assert state["status"] == "pending" and state["attempts"] >= 2 and state["last_status_code"] is None
    server.stop_process()
    with Receiver(port=port) as receiver:
        server.start_process()
        (delivered,) = receiver.wait_for(1, timeout=30)
        event = delivered.verified(secret)
        assert event["data"]["id"] == job_id and event["type"] == "transcription.completed"
        deadline = time.monotonic() + 10
        while webhook_state(server, key, job_id)["status"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert webhook_state(server, key, job_id)["status"] == "delivered"
        assert len(receiver.deliveries) == 1

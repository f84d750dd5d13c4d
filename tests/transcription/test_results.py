"""Waiting for a transcription, 202 when it takes too long, and who may see it."""
import threading
import time

import pytest
from django.db import connection

from pool.models import Job
from tests.helpers import claim_job, grant, in_threads, mint_caller, online_worker


def work_in_background(caller, worker_id="w1", text="こんにちは、今日は配信を始めます。", fail=False, delay=0.2):
    """A worker in another thread: claims one job (long-polling) and finishes it."""
    def run():
        try:
            time.sleep(delay)
            job = caller.claim(worker_id, wait_seconds=10).json()["job"]
            if job:
                (caller.fail(job, worker_id) if fail else caller.complete(job, worker_id, text=text))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
class TestWaiting:
    def test_it_waits_for_the_worker_and_answers_with_the_spec_body(self, alice, settings):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
        online_worker(alice)
        worker = work_in_background(alice)
        response = alice.transcribe(wait=True)
        worker.join()
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["id"].startswith("tx_")
        assert body["language"] == "ja"
        assert body["text"] == "こんにちは、今日は配信を始めます。"
        assert body["translation"] is None
        assert body["duration_seconds"] == 3.0
        assert body["processed_by"] == "self"
        assert body["route_reason"] == "Your worker is online — job runs on your CPU"
        assert body["model"] == "test-model"

    def test_translate_without_a_model_still_returns_the_text_with_a_warning(self, alice, settings):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
        settings.JPT_TRANSLATION_MODEL = "/nonexistent/model"
        online_worker(alice)
        worker = work_in_background(alice)
        body = alice.transcribe(wait=True, translate="true").json()
        worker.join()
        assert body["text"] and body["translation"] is None
        assert body["warnings"][0]["code"] == "translation_unavailable"
        assert "translation_model" in body["warnings"][0]["message"]

    def test_a_result_read_before_the_model_arrived_is_translated_once_it_has(self, alice, settings,
                                                                               tiny_model_dir):
        settings.JPT_TRANSLATION_MODEL = "/nonexistent/model"
        online_worker(alice)
        job_id = alice.transcribe(translate="true").json()["id"]
        alice.complete(claim_job(alice), text="こんにちは。")
        early = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert early["translation"] is None and early["warnings"][0]["code"] == "translation_unavailable"
        settings.JPT_TRANSLATION_MODEL = str(tiny_model_dir)  # prepared in the background meanwhile
        later = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert later["translation"] and later["warnings"] == []

    def test_a_job_that_fails_for_good_answers_500_saying_retry(self, alice, settings):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
        settings.JPT_MAX_ATTEMPTS = 1
        online_worker(alice)
        worker = work_in_background(alice, fail=True)
        response = alice.transcribe(wait=True)
        worker.join()
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert "retry" in response.json()["error"]["message"].lower()
        job_id = Job.objects.get().id
        stored = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert stored["status"] == "failed"
        assert (stored["error"]["type"], stored["error"]["param"]) == ("server_error", None), "the one envelope"

    def test_when_the_wait_runs_out_it_answers_202_with_a_status_url(self, alice, settings):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 0.3
        online_worker(alice)
        started = time.monotonic()
        response = alice.transcribe(wait=True)
        assert 0.3 <= time.monotonic() - started < 3
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "queued"
        assert body["status_url"] == f"http://testserver/v1/transcriptions/{body['id']}"
        assert response["Location"] == body["status_url"]
        assert response["Retry-After"] == "5"  # polls spaced so a few jobs fit the key's 30 a minute


@pytest.mark.django_db
class TestAsyncAndStatus:
    def test_prefer_respond_async_answers_202_at_once(self, alice):
        online_worker(alice)
        response = alice.transcribe()
        assert response.status_code == 202
        assert response["Preference-Applied"] == "respond-async"
        assert set(response.json()) >= {"id", "status", "status_url"}

    def test_the_status_follows_the_job(self, alice):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        assert alice.get(f"/v1/transcriptions/{job_id}").json()["status"] == "queued"
        job = claim_job(alice)
        assert alice.get(f"/v1/transcriptions/{job_id}").json()["status"] == "processing"
        alice.complete(job, segments=[{"start": 0, "end": 1, "text": "こんにちは"}])
        response = alice.get(f"/v1/transcriptions/{job_id}")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "completed" and body["text"] == "こんにちは"
        assert body["segments"] == [{"start": 0.0, "end": 1.0, "text": "こんにちは"}]

    def test_nobody_but_the_owner_sees_a_transcription(self, alice, bob):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        response = bob.get(f"/v1/transcriptions/{job_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert bob.get("/v1/transcriptions/tx_doesnotexist").status_code == 404

    def test_a_pool_job_processed_by_a_stranger_is_still_private(self, alice, bob):
        grant(bob, 10)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice)
        alice.complete(claim_job(alice))
        assert alice.get(f"/v1/transcriptions/{job_id}").status_code == 404
        assert bob.get(f"/v1/transcriptions/{job_id}").json()["processed_by"] == "pool"

    def test_no_job_is_lost_when_no_worker_ever_comes(self, alice, settings):
        grant(alice, 10)
        job_id = alice.transcribe().json()["id"]
        settings.JPT_QUEUE_TIMEOUT_SECONDS = 0
        body = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert body["status"] == "failed" and "No worker took this job" in body["error"]["message"]
        assert alice.get("/v1/account").json()["credits_seconds"] == 10.0
        assert Job.objects.get().status == "failed"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_waiting_claim_is_woken_by_a_new_job_at_once(settings):
    """The long-poll is a wake-up, not a busy loop: dispatch well under the safety-net poll."""
    settings.JPT_WAKEUP_POLL_SECONDS = 5
    alice = online_worker(mint_caller())
    result = {}

    def claim():
        started = time.monotonic()
        result["job"] = alice.claim(wait_seconds=8).json()["job"]
        result["waited"] = time.monotonic() - started
        connection.close()

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.5)
    submitted = time.monotonic()
    alice.transcribe()
    thread.join()
    assert result["job"] is not None
    assert time.monotonic() - submitted < 2, "woken by the submit, not by the 5 s poll"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_result_read_by_many_at_once_is_translated_once(alice, monkeypatch):
    from types import SimpleNamespace

    from translation import services as translation

    calls = []

    def slow_translate(text):
        calls.append(text)
        time.sleep(0.5)
        return SimpleNamespace(text="Hello.", model="stand-in")

    monkeypatch.setattr(translation, "translate", slow_translate)
    online_worker(alice)
    job_id = alice.transcribe(translate="true").json()["id"]
    alice.complete(claim_job(alice), text="こんにちは。")
    answers = []
    in_threads(lambda: answers.append(alice.get(f"/v1/transcriptions/{job_id}").json()), 4)
    assert [a["translation"] for a in answers] == ["Hello."] * 4
    assert calls == ["こんにちは。"], "translated once, stored, and read by the others"

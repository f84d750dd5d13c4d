"""Idempotency-Key on the transcription calls: a retry attaches to the first request's job, so it
queues nothing, holds no credits and spends no demo, and answers as a fresh call for that job
would now (waiting for it, or its result, or 202)."""
import os
import threading
import time

import pytest
import requests
from django.db import connection

from accounts.models import CreditEntry, IdempotentRequest
from pool.models import Job
from tests.clips import wav_bytes
from tests.helpers import Caller, claim_job, grant, in_threads, online_worker, upload
from tests.live import LiveServer

CLIP = wav_bytes(3)


def submit(caller, key="tx-1", data=CLIP, wait=False, path="/v1/transcribe", **fields):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    if not wait:
        headers["HTTP_PREFER"] = "respond-async"
    if "url" not in fields:
        fields["file"] = upload(data)
    return caller.client.post(path, fields, format="multipart", **headers)


def demos_left(caller):
    return caller.get("/v1/account").json()["demos_left_today"]


@pytest.mark.django_db
@pytest.mark.postgres
class TestRetries:
    def test_a_retry_returns_the_same_job_and_queues_no_second(self, alice):
        online_worker(alice)
        first = submit(alice)
        again = submit(alice)
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        assert again["Location"] == first["Location"]
        assert Job.objects.count() == 1

    def test_a_retry_holds_no_second_credit(self, alice):
        grant(alice, 10)
        first = submit(alice).json()
        again = submit(alice).json()
        assert first["processed_by"] == again["processed_by"] == "pool" and again["id"] == first["id"]
        assert CreditEntry.objects.filter(key=alice.key, kind="reserved").count() == 1
        assert alice.get("/v1/account").json()["credits_seconds"] == 7.0

    def test_a_retry_spends_no_second_demo(self, alice, demo_worker):
        first = submit(alice).json()
        again = submit(alice).json()
        assert first["processed_by"] == again["processed_by"] == "server_demo" and again["id"] == first["id"]
        assert demos_left(alice) == 2

    def test_a_retry_after_the_job_ended_returns_its_result(self, alice):
        online_worker(alice)
        job_id = submit(alice).json()["id"]
        alice.complete(claim_job(alice), text="こんにちは")
        again = submit(alice)
        assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
        assert (again.json()["id"], again.json()["status"], again.json()["text"]) == (job_id, "completed", "こんにちは")
        assert submit(alice, wait=True).json()["text"] == "こんにちは", "a waiting retry answers at once"

    def test_a_retry_of_a_failed_job_answers_its_failure(self, alice, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        online_worker(alice)
        submit(alice)
        alice.fail(claim_job(alice))
        again = submit(alice)
        assert again.status_code == 500 and again.json()["error"]["code"] == "internal_error"
        assert Job.objects.count() == 1

    def test_another_clip_with_the_same_key_is_422(self, alice):
        online_worker(alice)
        submit(alice)
        response = submit(alice, data=wav_bytes(2))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert Job.objects.count() == 1

    def test_other_fields_with_the_same_key_are_422(self, alice):
        online_worker(alice)
        submit(alice)
        assert submit(alice, translate="true").status_code == 422
        assert submit(alice, words="true").status_code == 422

    def test_keys_are_per_api_key(self, alice, bob):
        online_worker(alice)
        online_worker(bob)
        mine, theirs = submit(alice).json()["id"], submit(bob).json()["id"]
        assert mine != theirs and Job.objects.count() == 2

    def test_a_refused_request_gives_its_key_back(self, alice):
        """403 worker_required queues and charges nothing: once the cause is fixed, a retry runs."""
        refused = submit(alice)
        assert refused.status_code == 403 and not IdempotentRequest.objects.exists()
        grant(alice, 10)
        retried = submit(alice)
        assert retried.status_code == 202 and "Idempotent-Replayed" not in retried
        assert Job.objects.count() == 1

    def test_bad_audio_gives_its_key_back(self, alice):
        online_worker(alice)
        for _ in range(2):
            response = submit(alice, data=b"not audio")
            assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_audio"
        assert not IdempotentRequest.objects.exists()

    def test_a_url_is_fetched_once(self, alice, monkeypatch):
        from transcription import intake

        fetched = []

        def read_url(url):
            fetched.append(url)
            return CLIP

        monkeypatch.setattr(intake, "read_url", read_url)
        online_worker(alice)
        first = submit(alice, url="https://example.com/a.wav")
        again = submit(alice, url="https://example.com/a.wav")
        assert again.json()["id"] == first.json()["id"] and fetched == ["https://example.com/a.wav"]
        assert submit(alice, url="https://example.com/b.wav").status_code == 422

    def test_a_retry_before_the_first_has_queued_its_job_is_409(self, alice, monkeypatch):
        """The first is still reading its audio: the retry waits a little, then says retry."""
        from transcription import intake, services

        monkeypatch.setattr(services, "FIRST_JOB_WAIT_SECONDS", 0.3)
        check_audio, during = intake.check_audio, {}

        def check_while_retried(data):
            during["retry"] = submit(alice)
            return check_audio(data)

        monkeypatch.setattr(intake, "check_audio", check_while_retried)
        online_worker(alice)
        assert submit(alice).status_code == 202
        assert during["retry"].status_code == 409
        assert during["retry"].json()["error"]["code"] == "idempotency_conflict"
        assert Job.objects.count() == 1

    def test_the_browser_proxys_visitors_count_per_address(self, db, demo_worker):
        """Visitors share the browser key: the same Idempotency-Key from two homes is two requests."""
        first, second = (Caller(None, ip=ip) for ip in ("198.51.100.20", "198.51.100.21"))
        ids = []
        for visitor in (first, second):
            visitor.client.get("/")  # the CSRF cookie
            token = visitor.client.cookies["csrftoken"].value
            response = visitor.client.post(
                "/api/v1/transcribe", {"file": upload(CLIP)}, format="multipart",
                HTTP_IDEMPOTENCY_KEY="tx-1", HTTP_PREFER="respond-async", HTTP_X_CSRFTOKEN=token,
                HTTP_ORIGIN="http://testserver")
            assert response.status_code == 202, response.json()
            ids.append(response.json()["id"])
        assert ids[0] != ids[1]


@pytest.mark.django_db
@pytest.mark.postgres
class TestOpenAICalls:
    def test_a_retried_audio_transcription_answers_the_first_jobs_text(self, alice):
        online_worker(alice)
        fields = {"model": "whisper-1", "response_format": "text"}
        first = submit(alice, path="/v1/audio/transcriptions", wait=True, **fields)
        assert first.status_code == 202  # no wait in tests: the job is queued
        alice.complete(claim_job(alice), text="こんにちは")
        again = submit(alice, path="/v1/audio/transcriptions", wait=True, **fields)
        assert again.status_code == 200 and again.content.decode().strip() == "こんにちは"
        assert again["Idempotent-Replayed"] == "true" and Job.objects.count() == 1

    def test_another_response_format_with_the_same_key_is_422(self, alice):
        online_worker(alice)
        submit(alice, path="/v1/audio/transcriptions", wait=True, model="whisper-1")
        again = submit(alice, path="/v1/audio/transcriptions", wait=True, model="whisper-1", response_format="srt")
        assert again.status_code == 422


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
class TestConcurrentRetries:
    def test_concurrent_retries_with_one_key_make_one_job_and_one_charge(self, alice):
        grant(alice, 100)
        answers, start = [], threading.Barrier(6)

        def send():
            caller = Caller(alice.raw_key, ip=alice.ip)
            start.wait()
            answers.append(submit(caller))

        in_threads(send, 6)
        assert sorted(a.status_code for a in answers) == [202] * 6, [a.json() for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.has_header("Idempotent-Replayed") for a in answers) == 5
        assert Job.objects.filter(key=alice.key).count() == 1
        assert CreditEntry.objects.filter(key=alice.key, kind="reserved").count() == 1
        assert alice.get("/v1/account").json()["credits_seconds"] == 97.0

    def test_a_retry_while_the_first_still_waits_attaches_to_its_job(self, alice, settings):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
        online_worker(alice)
        answers = {}

        def send(name):
            answers[name] = submit(Caller(alice.raw_key, ip=alice.ip), wait=True)
            connection.close()

        first = threading.Thread(target=send, args=("first",))
        first.start()
        while not Job.objects.exists():
            time.sleep(0.05)
        retry = threading.Thread(target=send, args=("retry",))
        retry.start()
        time.sleep(0.5)
        alice.complete(claim_job(alice), text="こんにちは")
        first.join()
        retry.join()
        assert answers["first"].status_code == answers["retry"].status_code == 200
        assert answers["retry"].json() == answers["first"].json()
        assert answers["retry"]["Idempotent-Replayed"] == "true"
        assert Job.objects.count() == 1


@pytest.mark.slow
@pytest.mark.postgres
def test_a_dropped_connection_then_a_retry_returns_the_first_jobs_result():
    """Over real HTTP: the caller gives up on a waiting transcribe (its socket closed), retries with
    the same key while the server still waits for the job, and gets the job's text once a worker
    delivers it; nothing is queued twice."""
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), env={"JPT_WAKEUP_POLL_SECONDS": "1"}) as server:
        key = server.mint_key()
        auth = {"Authorization": f"Bearer {key}"}
        worker = requests.Session()
        worker.headers.update(auth)
        worker.post(f"{server.url}/v1/worker/heartbeat", json={"worker_id": "w1"}, timeout=10).raise_for_status()

        def transcribe(timeout):
            return requests.post(f"{server.url}/v1/transcribe", headers={**auth, "Idempotency-Key": '"tx-1"'},
                                 files={"file": ("a.wav", CLIP)}, timeout=timeout)

        with pytest.raises(requests.exceptions.ReadTimeout):
            transcribe(timeout=(5, 1))  # the server is still waiting for a worker when we hang up
        answer = {}
        retry = threading.Thread(target=lambda: answer.update(response=transcribe(timeout=60)))
        retry.start()
        job = worker.post(f"{server.url}/v1/pool/claim", json={"worker_id": "w1", "wait_seconds": 10},
                          timeout=30).json()["job"]
        time.sleep(0.5)  # the retry is waiting for the job by now
        worker.post(f"{server.url}/v1/pool/jobs/{job['id']}/complete",
                    json={"worker_id": "w1", "lease_id": job["lease_id"], "text": "こんにちは", "model": "stand-in"},
                    timeout=10).raise_for_status()
        retry.join()
        response = answer["response"]
        assert response.status_code == 200, response.text
        assert response.headers["Idempotent-Replayed"] == "true"
        assert (response.json()["id"], response.json()["text"]) == (job["id"], "こんにちは")
        listed = server.get("/v1/transcriptions", key).json()["data"]
        assert [item["id"] for item in listed] == [job["id"]], "one job"
        later = transcribe(timeout=10)
        assert later.status_code == 200 and later.json()["text"] == "こんにちは"

"""DELETE /v1/transcriptions/{id}: a running transcription is cancelled with everything it held
given back; a finished one's words are erased from the API, the admin and the database alike."""

import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import CreditEntry
from pool.models import Job, JobAttempt
from tests.clips import wav_bytes
from tests.helpers import Caller, claim_job, grant, online_worker, upload

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SECRET = "秘密の話です。"
PROMPT = "合言葉はひまわり"
TRANSLATION = "A secret story."


def delete(caller, job_id):
    return caller.client.delete(f"/v1/transcriptions/{job_id}")


def balance(caller):
    return caller.get("/v1/account").json()["credits_seconds"]


def ledger(job_id):
    rows = CreditEntry.objects.filter(job_ref=job_id).order_by("id").values_list("kind", "seconds")
    return [(kind, float(seconds)) for kind, seconds in rows]


def completed_with_secrets(caller):
    """A transcription of the caller's own worker, finished: its prompt, text, segments, words,
    warnings and stored translation all hold words only the caller should ever see."""
    online_worker(caller)
    sent = caller.post(
        "/v1/audio/transcriptions",
        {
            "file": upload(wav_bytes()),
            "model": "whisper-1",
            "prompt": PROMPT,
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        },
        fmt="multipart",
    )
    assert sent.status_code == 202, sent.json()
    job = claim_job(caller)
    assert job["options"]["prompt"] == PROMPT
    words = [{"word": "秘密", "start": 0.1, "end": 0.5}, {"word": "の話です。", "start": 0.5, "end": 1.0}]
    done = caller.complete(
        job,
        text=SECRET,
        segments=[{"start": 0.0, "end": 1.0, "text": SECRET, "words": words}],
        warnings=[f"prompt ignored: {PROMPT}"],
    )
    assert done.status_code == 200, done.json()
    Job.objects.filter(pk=job["id"]).update(translate=True, translation=TRANSLATION)
    return job["id"]


def holds_secrets(value) -> bool:
    return any(secret in str(value) for secret in (SECRET, "秘密", PROMPT, TRANSLATION))


@pytest.fixture
def staff():
    User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.login(username="ops", password="a-long-password-1")
    return client


class TestCancelling:
    def test_cancelling_a_queued_pool_job_refunds_its_hold_in_the_ledger(self, alice):
        grant(alice, 10)
        job_id = alice.transcribe().json()["id"]
        assert balance(alice) == 7.0
        response = delete(alice, job_id)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == job_id and body["status"] == "cancelled" and body["erased_at"]
        assert body["error"] == {
            "code": "cancelled",
            "message": "Cancelled by its owner.",
            "type": "invalid_request_error",
            "param": None,
        }
        assert alice.get(f"/v1/transcriptions/{job_id}").json() == body, "GET shows what DELETE answered"
        assert ledger(job_id) == [("reserved", -3.0), ("refunded", 3.0)]
        assert balance(alice) == 10.0

    def test_cancelling_a_queued_demo_gives_the_demo_back(self, alice, demo_worker):
        job_id = alice.transcribe().json()["id"]
        assert Job.objects.get(pk=job_id).route == "server_demo"
        assert alice.get("/v1/account").json()["demos_left_today"] == 2
        assert delete(alice, job_id).json()["status"] == "cancelled"
        assert alice.get("/v1/account").json()["demos_left_today"] == 3
        assert claim_job(demo_worker, "demo") is None, "nothing left for the demo worker"

    def test_the_worker_holding_a_cancelled_job_loses_its_lease_and_earns_nothing(self, alice, bob):
        grant(bob, 10)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice)
        job = claim_job(alice)
        assert delete(bob, job_id).json()["status"] == "cancelled"

        beat = alice.heartbeat(leases=[job["lease_id"]]).json()
        assert beat["leases_renewed"] == [] and beat["leases_lost"] == [job["lease_id"]]
        late = alice.complete(job, text=SECRET)
        assert late.status_code == 409 and late.json()["error"]["code"] == "lease_lost"
        assert "cancelled" in late.json()["error"]["message"], "not a lease that expired or went to another"
        assert alice.audio(job).json()["error"]["code"] == "lease_lost"
        assert ledger(job_id) == [("reserved", -3.0), ("refunded", 3.0)], "no charge, no earning"
        assert balance(bob) == 10.0 and balance(alice) == 0.0
        assert JobAttempt.objects.get(lease_id=job["lease_id"]).outcome == "abandoned"
        stored = Job.objects.get(pk=job_id)
        assert (stored.status, stored.text, stored.worker_id) == ("cancelled", "", None)
        # Its place is free again: the worker takes the next job.
        next_id = bob.transcribe().json()["id"]
        assert claim_job(alice)["id"] == next_id

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize("by", ["its owner", "an operator"])
    def test_a_transcribe_call_waiting_for_a_job_that_is_cancelled_answers_409_cancelled(self, alice, settings, by):
        settings.JPT_TRANSCRIBE_WAIT_SECONDS = 20
        online_worker(alice)
        answers = []

        def wait_for_text():
            from django.db import connection

            try:
                answers.append(Caller(alice.raw_key, ip=alice.ip).transcribe(wait=True))
            finally:
                connection.close()

        waiting = threading.Thread(target=wait_for_text)
        started = time.monotonic()
        waiting.start()
        while not Job.objects.exists():
            assert time.monotonic() - started < 10, "the job was never queued"
            time.sleep(0.05)
        if by == "its owner":
            assert delete(alice, Job.objects.get().pk).status_code == 200
        else:
            User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
            staff = Client()
            staff.login(username="ops", password="a-long-password-1")
            staff.post("/admin/pool/job/", {"action": "cancel", "_selected_action": [Job.objects.get().pk]})
        waiting.join(15)
        assert not waiting.is_alive() and time.monotonic() - started < 15, "the waiting call was not woken"
        (answer,) = answers
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "cancelled"
        assert answer.json()["error"]["message"] == f"Cancelled by {by}."


class TestErasing:
    def test_an_erased_transcription_shows_no_text_through_the_api_the_admin_or_the_database(self, alice, staff):
        job_id = completed_with_secrets(alice)
        assert alice.get(f"/v1/transcriptions/{job_id}").json()["text"] == SECRET
        change_page = reverse("admin:pool_job_change", args=[quote(job_id)])
        assert SECRET in staff.get(change_page).content.decode()

        response = delete(alice, job_id)
        assert response.status_code == 204 and response.content == b""

        shown = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert shown["status"] == "completed" and shown["erased_at"] and shown["model"] == "test-model"
        assert shown["duration_seconds"] == 3.0 and shown["processed_by"] == "self"
        assert not {"text", "segments", "translation", "warnings"} & set(shown) and not holds_secrets(shown)
        listed = alice.get("/v1/transcriptions", data={"include_text": "true"}).json()["data"]
        assert listed[0]["erased_at"] == shown["erased_at"] and "text" not in listed[0]
        assert not holds_secrets(listed)
        for fmt in ("srt", "vtt", "txt"):
            refused = alice.get(f"/v1/transcriptions/{job_id}", data={"format": fmt})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "format"
            assert "erased" in refused.json()["error"]["message"]

        page = staff.get(change_page)
        assert page.status_code == 200 and not holds_secrets(page.content.decode())
        (row,) = Job.objects.values()
        assert not holds_secrets(row), row
        assert (row["status"], row["route"], float(row["duration_seconds"]), row["model"]) == (
            "completed",
            "pool_self",
            3.0,
            "test-model",
        )
        assert row["erased_at"] is not None and row["finished_at"] is not None

    def test_a_failed_transcription_keeps_its_error_once_erased(self, alice, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        alice.fail(claim_job(alice), error="decoder crashed")
        assert delete(alice, job_id).status_code == 204
        shown = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert shown["status"] == "failed" and shown["erased_at"] and "decoder crashed" in shown["error"]["message"]

    def test_another_keys_delete_is_404_like_its_get_and_changes_nothing(self, alice, bob):
        grant(alice, 10)
        job_id = alice.transcribe().json()["id"]
        refused = delete(bob, job_id)
        assert refused.status_code == 404
        assert refused.json() == bob.get(f"/v1/transcriptions/{job_id}").json()
        assert delete(bob, "tx_" + "0" * 20).json() == refused.json(), "a foreign id reads as a missing one"
        job = Job.objects.get()
        assert (job.status, job.erased_at) == ("queued", None)
        assert balance(alice) == 7.0

    def test_deleting_twice_answers_204_both_times_and_changes_nothing_the_second(self, alice):
        job_id = completed_with_secrets(alice)
        assert delete(alice, job_id).status_code == 204
        first = Job.objects.values().get()
        assert delete(alice, job_id).status_code == 204
        assert Job.objects.values().get() == first

    def test_a_cancelled_transcription_deleted_again_answers_204(self, alice):
        grant(alice, 10)
        job_id = alice.transcribe().json()["id"]
        assert delete(alice, job_id).status_code == 200
        assert delete(alice, job_id).status_code == 204
        assert ledger(job_id) == [("reserved", -3.0), ("refunded", 3.0)], "refunded once"

    def test_sweep_erases_results_older_than_the_retention_and_leaves_newer_ones(self, alice, settings):
        settings.JPT_RESULT_RETENTION_DAYS = 30
        old, new = completed_with_secrets(alice), completed_with_secrets(alice)
        now = timezone.now()
        Job.objects.filter(pk=old).update(finished_at=now - timedelta(days=31))
        Job.objects.filter(pk=new).update(finished_at=now - timedelta(days=29))
        out = StringIO()
        call_command("sweep", stdout=out)
        assert "results erased: 1" in out.getvalue() and "old jobs deleted: 0" in out.getvalue()
        erased, kept = Job.objects.get(pk=old), Job.objects.get(pk=new)
        assert erased.erased_at is not None and not holds_secrets(Job.objects.filter(pk=old).values().get())
        assert kept.erased_at is None and kept.text == SECRET and kept.options["prompt"] == PROMPT
        assert alice.get(f"/v1/transcriptions/{new}").json()["text"] == SECRET
        call_command("sweep", stdout=(again := StringIO()))
        assert "results erased: 0" in again.getvalue()

    def test_the_admin_erases_the_results_of_finished_jobs_only(self, alice, staff):
        done = completed_with_secrets(alice)
        waiting = alice.transcribe().json()["id"]
        staff.post("/admin/pool/job/", {"action": "erase", "_selected_action": [done, waiting]}, follow=True)
        assert Job.objects.get(pk=done).erased_at is not None
        assert not holds_secrets(Job.objects.filter(pk=done).values().get())
        assert Job.objects.get(pk=waiting).erased_at is None and Job.objects.get(pk=waiting).status == "queued"

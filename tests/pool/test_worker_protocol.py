import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import CreditEntry
from pool.leases import jobs_expire_leases
from pool.models import Job, JobAttempt, JobAudio, Worker
from pool.services import worker_ban
from tests.clips import wav_bytes
from tests.helpers import claim_job, grant, make_trusted, mint_caller, online_worker
from transcription.intake import CheckedAudio
from transcription.services import transcription_submit_and_wait
from worker_client.worker import engine_options

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def age_worker(caller, worker_id, seconds):
    Worker.objects.filter(key=caller.key, client_id=worker_id).update(
        last_seen_at=timezone.now() - timedelta(seconds=seconds))


class TestHeartbeat:
    def test_it_registers_a_worker_that_counts_as_online(self, alice):
        body = alice.heartbeat("w1", name="desk", model="vosk-small-ja", version="1.0").json()
        assert body["accepted"] is True and body["online"] is True
        assert body["ttl_seconds"] == 900
        worker = Worker.objects.get()
        assert (worker.name, worker.model, worker.version) == ("desk", "vosk-small-ja", "1.0")
        assert alice.get("/v1/account").json()["worker_online"] is True

    def test_a_worker_silent_for_90_seconds_is_not_online(self, alice):
        online_worker(alice)
        age_worker(alice, "w1", 91)
        assert alice.get("/v1/account").json()["worker_online"] is False

    def test_a_worker_going_offline_stops_counting_at_once(self, alice):
        online_worker(alice)
        alice.heartbeat("w1", status="offline")
        assert alice.get("/v1/account").json()["worker_online"] is False

    def test_the_same_process_beating_again_updates_what_it_says_and_stays_registered(self, alice):
        alice.heartbeat(session_id="first-process", name="desk", model="base")
        Worker.objects.update(last_seen_at=timezone.now() - timedelta(seconds=80),
                              expires_at=timezone.now() + timedelta(seconds=10))
        body = alice.heartbeat(session_id="first-process", name="laptop", model="small", max_jobs=2).json()
        assert (body["online"], body["max_jobs"], body["leases_renewed"]) == (True, 2, [])
        worker = Worker.objects.get()
        assert (worker.name, worker.model, worker.max_jobs, worker.session_id) == ("laptop", "small", 2, "first-process")
        assert (timezone.now() - worker.last_seen_at).total_seconds() < 5
        assert (worker.expires_at - timezone.now()).total_seconds() > 890

    @pytest.mark.parametrize("session_id", ["s1", "", "a" * 65, "first process", "uuid.hex"])
    def test_a_session_id_outside_8_to_64_letters_digits_underscores_or_hyphens_is_refused_saying_so(
        self, alice, session_id
    ):
        response = alice.heartbeat(session_id=session_id)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", "session_id")
        assert "8 to 64 letters, digits, '_' or '-'" in error["message"]
        assert not Worker.objects.exists()

    def test_a_session_id_of_8_to_64_such_characters_is_taken(self, alice):
        for session_id in ("a1_b2-c3", "0" * 64, "9f3c2a1e4b5d6c7e8f9a0b1c2d3e4f5a"):
            assert alice.heartbeat(session_id=session_id).status_code == 200, session_id

    def test_a_claim_keeps_the_worker_registered_and_online_as_a_heartbeat_does(self, alice):
        body = alice.heartbeat(session_id="first-process").json()
        assert body["claims_renew_registration"] is True
        Worker.objects.update(last_seen_at=timezone.now() - timedelta(seconds=80),
                              expires_at=timezone.now() + timedelta(seconds=10))
        assert alice.claim("w1").status_code == 200
        worker = Worker.objects.get()
        assert (timezone.now() - worker.last_seen_at).total_seconds() < 5
        assert (worker.expires_at - timezone.now()).total_seconds() > 890

    def test_a_worker_that_said_goodbye_comes_back_with_its_next_heartbeat(self, alice):
        alice.heartbeat(session_id="first-process")
        alice.heartbeat(session_id="first-process", status="offline")
        assert alice.get("/v1/account").json()["worker_online"] is False
        assert alice.heartbeat(session_id="first-process").json()["online"] is True
        assert alice.get("/v1/account").json()["worker_online"] is True

    def test_it_refuses_a_bad_worker_id(self, alice):
        response = alice.heartbeat("../../etc")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"

    def test_claim_needs_a_registered_worker(self, alice):
        response = alice.claim("never-registered")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "worker_not_registered"

    def test_a_banned_key_cannot_run_workers(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        worker_ban(key=alice.key)
        assert alice.heartbeat().json()["error"]["code"] == "worker_banned"
        assert Job.objects.get(pk=job["id"]).status == "queued"


class TestLeasesEnd:
    """A lease lives while its worker says it holds it, in the same process, and no longer than
    the hard limit; a worker holds no more jobs than it runs at once."""

    def test_a_restarted_worker_process_hands_back_what_the_old_one_held_at_once(self, alice):
        alice.heartbeat(session_id="first-process")
        alice.transcribe()
        job = claim_job(alice)
        beat = alice.heartbeat(session_id="second-process", leases=[]).json()
        assert beat["accepted"] is True
        assert Job.objects.get().status == "queued", "back in the queue without waiting for the lease"
        attempt = JobAttempt.objects.get(lease_id=job["lease_id"])
        assert attempt.outcome == "expired" and "restarted" in attempt.error
        again = claim_job(alice)
        assert again["id"] == job["id"] and again["lease_id"] != job["lease_id"]

    def test_the_same_process_keeps_its_jobs(self, alice):
        alice.heartbeat(session_id="first-process")
        alice.transcribe()
        job = claim_job(alice)
        beat = alice.heartbeat(session_id="first-process", leases=[job["lease_id"]]).json()
        assert beat["leases_renewed"] == [job["lease_id"]]
        assert Job.objects.get().status == "leased"

    def test_a_lease_the_heartbeat_does_not_name_is_not_renewed(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        soon = timezone.now() + timedelta(seconds=2)
        Job.objects.filter(pk=job["id"]).update(lease_expires_at=soon)
        beat = alice.heartbeat(leases=["A" * 22]).json()
        assert beat["leases_renewed"] == [] and beat["leases_lost"] == ["A" * 22]
        assert Job.objects.get().lease_expires_at == soon

    def test_a_worker_holds_no_more_jobs_than_it_runs_at_once(self, alice):
        assert alice.heartbeat(max_jobs=2).json()["max_jobs"] == 2
        for _ in range(3):
            alice.transcribe()
        first, second = claim_job(alice), claim_job(alice)
        third = alice.claim()
        assert third.status_code == 409 and third.json()["error"]["code"] == "worker_busy"
        assert Job.objects.filter(status="queued").count() == 1
        alice.complete(first)
        assert claim_job(alice)["id"] not in (first["id"], second["id"]), "a place came free"

    def test_what_a_worker_may_declare_is_capped(self, alice, settings):
        assert alice.heartbeat(max_jobs=64).json()["max_jobs"] == settings.JPT_WORKER_MAX_JOBS == 4

    def test_a_lease_ends_at_its_hard_limit_however_often_it_is_renewed(self, alice, settings):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        limit = timezone.now() + timedelta(seconds=settings.JPT_LEASE_MAX_SECONDS)
        assert abs((Job.objects.get().lease_hard_expires_at - limit).total_seconds()) < 5
        Job.objects.filter(pk=job["id"]).update(lease_hard_expires_at=timezone.now() - timedelta(seconds=1))
        alice.heartbeat(leases=[job["lease_id"]])  # renews up to the limit, already past
        assert jobs_expire_leases() == 1
        stored = Job.objects.get()
        assert stored.status == "queued" and stored.attempts == 1
        attempt = JobAttempt.objects.get(lease_id=job["lease_id"])
        assert attempt.outcome == "expired" and "hard limit" in attempt.error


class TestClaiming:
    def test_a_worker_gets_its_owners_job_with_a_lease(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        assert job["id"].startswith("tx_") and job["route"] == "pool_self"
        assert job["lease_seconds"] == 120 and job["duration_seconds"] == 3.0
        assert job["audio_url"] == f"/v1/pool/jobs/{job['id']}/audio"
        assert claim_job(online_worker(alice, "w2"), "w2") is None, "a job is handed out once"

    def test_a_claim_that_asks_gets_small_audio_in_its_answer(self, alice):
        online_worker(alice)
        clip = wav_bytes(2)
        alice.transcribe(clip)
        job = alice.post("/v1/pool/claim", {"worker_id": "w1", "wait_seconds": 0, "inline_audio": True}).json()["job"]
        assert base64.b64decode(job["audio_base64"]) == clip
        # Still there to fetch too (a retry after a lost answer, say).
        assert alice.audio(job).content == clip

    def test_audio_over_the_inline_limit_or_not_asked_for_is_fetched_instead(self, alice, settings):
        settings.JPT_CLAIM_INLINE_AUDIO_BYTES = len(wav_bytes(2)) - 1
        online_worker(alice, max_jobs=2)
        alice.transcribe(wav_bytes(2))
        alice.transcribe(wav_bytes(1))
        too_big = alice.post("/v1/pool/claim", {"worker_id": "w1", "wait_seconds": 0, "inline_audio": True})
        assert too_big.json()["job"]["audio_base64"] is None
        assert alice.claim(inline_audio=False).json()["job"]["audio_base64"] is None, "not asked for"

    def test_own_jobs_come_before_older_pool_jobs(self, alice, bob):
        grant(bob, 100)
        bob.transcribe()  # bob has no worker: pool_credit, and older
        online_worker(alice, max_jobs=2)
        alice.transcribe()
        assert claim_job(alice)["route"] == "pool_self"
        assert claim_job(alice)["route"] == "pool_credit"

    def test_pool_jobs_go_oldest_first(self, alice, bob):
        grant(bob, 100)
        first = bob.transcribe().json()["id"]
        second = bob.transcribe().json()["id"]
        online_worker(alice, max_jobs=2)
        assert [claim_job(alice)["id"], claim_job(alice)["id"]] == [first, second]

    def test_one_keys_own_jobs_never_go_to_another_keys_worker(self, alice, bob):
        online_worker(alice)
        alice.transcribe()
        online_worker(bob, "b1")
        assert claim_job(bob, "b1") is None

    def test_demo_jobs_go_only_to_the_server_demo_worker(self, alice, bob, demo_worker):
        alice.transcribe()
        assert Job.objects.get().route == "server_demo"
        online_worker(bob, "b1")
        assert claim_job(bob, "b1") is None
        assert claim_job(demo_worker, "demo")["route"] == "server_demo"

    def test_the_demo_worker_takes_nothing_but_demo_jobs(self, alice, bob, demo_worker):
        grant(bob, 100)
        bob.transcribe(wav_bytes(40))  # too long for the demo: pool_credit
        assert claim_job(demo_worker, "demo") is None

    def test_a_banned_or_signed_off_worker_gets_nothing_even_mid_poll(self, alice, bob):
        from pool.services import claim_once

        grant(bob, 100)
        bob.transcribe()
        online_worker(alice)
        worker = Worker.objects.get(key=alice.key)
        worker_ban(key=alice.key)
        assert claim_once(worker) is None
        assert Job.objects.get().status == "queued"

    def test_a_long_poll_returns_empty_after_its_wait(self, alice):
        online_worker(alice)
        response = alice.claim(wait_seconds=0.3)
        assert response.status_code == 200 and response.json() == {"job": None}

    def test_a_long_poll_that_finds_a_job_at_once_needs_no_place_to_wait(self, alice, settings):
        """Places cap claims that wait (each holds a server thread); one served at once holds none."""
        settings.JPT_CLAIMS_WAITING_PER_KEY = 0
        online_worker(alice)
        alice.transcribe()
        assert alice.claim(wait_seconds=1).json()["job"] is not None
        alice.heartbeat("w2")
        refused = alice.claim("w2", wait_seconds=1)
        assert refused.status_code == 429 and "claims waiting" in refused.json()["error"]["message"]


class TestHoldingAJob:
    def test_only_the_holder_can_fetch_the_audio(self, alice, bob):
        clip = wav_bytes(2)
        online_worker(alice)
        alice.transcribe(clip)
        job = claim_job(alice)
        response = alice.audio(job)
        assert response.status_code == 200 and response.content == clip
        assert response["Content-Type"] == "audio/wav"
        online_worker(bob, "b1")
        stranger = bob.audio(job, worker_id="b1")
        assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "not_found"
        assert alice.audio(job, lease_id="wrong").json()["error"]["code"] == "lease_lost"

    def test_a_stranger_cannot_complete_or_fail_anothers_job(self, alice, bob):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        online_worker(bob, "b1")
        assert bob.complete(job, worker_id="b1").status_code == 404
        assert bob.fail(job, worker_id="b1").status_code == 404
        assert Job.objects.get().status == "leased"

    def test_complete_stores_the_result_and_deletes_the_audio(self, alice):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        job = claim_job(alice)
        segments = [{"start": 0, "end": 1.25, "text": "こんにちは"}]
        response = alice.complete(job, text="こんにちは", segments=segments)
        assert response.status_code == 200
        assert response.json() == {"status": "completed", "credited_seconds": 0.0, "next_job": None}
        stored = Job.objects.get(pk=job_id)
        assert (stored.status, stored.text, stored.model) == ("completed", "こんにちは", "test-model")
        assert stored.segments == [{"start": 0.0, "end": 1.25, "text": "こんにちは"}]
        assert not JobAudio.objects.exists()
        assert alice.audio(job).status_code == 409

    def test_complete_is_idempotent(self, alice, bob):
        grant(bob, 10)
        bob.transcribe()
        online_worker(alice)
        job = claim_job(alice)
        first = alice.complete(job)
        again = alice.complete(job, text="something else")
        assert first.json() == again.json() == {"status": "completed", "credited_seconds": 3.0, "next_job": None}
        assert Job.objects.get().text == "こんにちは"
        assert CreditEntry.objects.filter(kind="pending").count() == 1
        account = alice.get("/v1/account").json()
        assert (account["credits_seconds"], account["credits_pending_seconds"]) == (0.0, 3.0)

    def test_fail_is_idempotent_and_requeues(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        assert alice.fail(job).json() == {"status": "queued"}
        assert alice.fail(job).json() == {"status": "queued"}
        stored = Job.objects.get()
        assert (stored.status, stored.failures) == ("queued", 1)

    def test_a_fail_repeated_after_the_job_went_to_another_worker_is_lease_lost(self, alice, bob):
        grant(bob, 100)
        bob.transcribe()
        online_worker(alice, "a1")
        job = claim_job(alice, "a1")
        assert alice.fail(job, worker_id="a1").json() == {"status": "queued"}
        charlie = online_worker(mint_caller(ip="192.0.2.3"), "c1")
        taken = claim_job(charlie, "c1")
        assert taken["id"] == job["id"]
        again = alice.fail(job, worker_id="a1")
        assert again.status_code == 409 and again.json()["error"]["code"] == "lease_lost"
        stored = Job.objects.get()
        assert (stored.status, stored.failures) == ("leased", 1), "the other worker keeps it"
        assert charlie.complete(taken, worker_id="c1").status_code == 200

    def test_a_fail_repeated_after_the_job_failed_for_good_answers_failed_again(self, alice, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        assert alice.fail(job).json() == {"status": "failed"}
        assert alice.fail(job).json() == {"status": "failed"}

    def test_a_text_longer_than_the_clip_can_hold_is_refused_and_the_job_stays_with_its_worker(self, alice):
        online_worker(alice)
        alice.transcribe(wav_bytes(3))  # holds at most 3 * 40 + 200 = 320 characters
        job = claim_job(alice)
        refused = alice.complete(job, text="ハッキング" * 65)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
        assert "at most 320" in refused.json()["error"]["message"]
        assert Job.objects.get().status == "leased"
        assert alice.complete(job, text="あ" * 320).status_code == 200

    def test_segment_times_are_kept_inside_the_clip(self, alice):
        online_worker(alice)
        job_id = alice.transcribe(wav_bytes(2)).json()["id"]
        job = claim_job(alice)
        segments = [{"start": 0, "end": 1.5, "text": "前半"}, {"start": 1.5, "end": 3600, "text": "後半"}]
        assert alice.complete(job, text="前半後半", segments=segments).status_code == 200
        assert alice.get(f"/v1/transcriptions/{job_id}").json()["segments"] == [
            {"start": 0.0, "end": 1.5, "text": "前半"}, {"start": 1.5, "end": 2.0, "text": "後半"}]

    def test_segments_must_be_well_formed(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        response = alice.complete(job, segments=[{"start": "soon"}])
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


WORDS = [{"word": "こんにちは", "start": 0.1, "end": 0.9}, {"word": "。", "start": 0.9, "end": 1.0}]
WHISPER_STATISTICS = {"seek": 0, "tokens": [50364, 3203, 50414], "temperature": 0.0, "avg_logprob": -0.25,
                      "compression_ratio": 0.8, "no_speech_prob": 0.01}


class TestNextJobWithTheCompletion:
    """A busy worker asks for its next job in the completion (claim_next) instead of a claim of its own."""

    def test_a_completion_that_asks_hands_over_the_next_waiting_job_with_a_lease(self, alice):
        online_worker(alice)
        first_id = alice.transcribe(wav_bytes(1)).json()["id"]
        second_clip = wav_bytes(2)
        second_id = alice.transcribe(second_clip).json()["id"]
        job = claim_job(alice)
        assert job["id"] == first_id
        answer = alice.complete(job, claim_next=True, inline_audio=True).json()
        next_job = answer["next_job"]
        assert (answer["status"], next_job["id"]) == ("completed", second_id)
        assert base64.b64decode(next_job["audio_base64"]) == second_clip
        assert Job.objects.get(pk=first_id).status == "completed"
        held = Job.objects.get(pk=second_id)
        assert (held.status, held.lease_id, held.worker.client_id) == ("leased", next_job["lease_id"], "w1")
        assert alice.audio(next_job).content == second_clip
        assert alice.complete(next_job, text="二つ目").json()["next_job"] is None
        assert Job.objects.get(pk=second_id).text == "二つ目"

    def test_with_nothing_waiting_the_next_job_is_null_and_the_result_stands(self, alice):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        answer = alice.complete(claim_job(alice), claim_next=True).json()
        assert answer["next_job"] is None
        assert Job.objects.get(pk=job_id).status == "completed"

    def test_a_completion_asked_to_wait_waits_as_a_claim_and_the_result_stands_meanwhile(self, alice):
        """An idle worker's next claim, folded into its completion: the result is stored first."""
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        started = time.monotonic()
        answer = alice.complete(claim_job(alice), claim_next=True, wait_seconds=0.5)
        assert answer.status_code == 200 and answer.json()["next_job"] is None
        assert time.monotonic() - started >= 0.5
        assert Job.objects.get(pk=job_id).status == "completed"

    def test_a_completion_with_no_place_to_wait_answers_at_once_instead_of_refusing(self, alice, settings):
        """The key's waiting claims are capped; the completion is stored, so it is never refused for
        that: it answers with no next job at once, and the worker's claim is where a refusal is said."""
        settings.JPT_CLAIMS_WAITING_PER_KEY = 0
        online_worker(alice)
        alice.transcribe()
        started = time.monotonic()
        answer = alice.complete(claim_job(alice), claim_next=True, wait_seconds=5)
        assert answer.status_code == 200 and answer.json()["next_job"] is None
        assert time.monotonic() - started < 2
        assert alice.claim(wait_seconds=1).status_code == 429

    def test_a_completion_that_does_not_ask_leaves_the_next_job_queued(self, alice):
        online_worker(alice)
        alice.transcribe()
        alice.transcribe()
        assert alice.complete(claim_job(alice)).json()["next_job"] is None
        assert Job.objects.filter(status="queued").count() == 1

    def test_the_next_job_comes_without_audio_unless_asked_for_as_in_a_claim(self, alice):
        online_worker(alice)
        alice.transcribe()
        alice.transcribe()
        next_job = alice.complete(claim_job(alice), claim_next=True).json()["next_job"]
        assert next_job["audio_base64"] is None and alice.audio(next_job).status_code == 200

    def test_a_worker_holding_all_it_runs_gets_no_next_job_and_no_error(self, alice):
        """A repeated completion (its first answer lost) while the worker has since taken as many
        jobs as it runs at once: the completion still answers, and nothing more is handed over."""
        alice.heartbeat(max_jobs=2)
        make_trusted(alice)
        for _ in range(4):
            alice.transcribe()
        first = claim_job(alice)
        alice.complete(first)
        claim_job(alice), claim_job(alice)
        again = alice.complete(first, claim_next=True)
        assert again.status_code == 200 and again.json()["next_job"] is None
        assert Job.objects.filter(status="queued").count() == 1


class TestResultDetail:
    """Segments may carry their timed words and Whisper's statistics; the server keeps them as
    numbers and strings, inside the clip, and keeps nothing else."""

    def completed(self, caller, segments, clip=None, **fields):
        job_id = caller.transcribe(clip).json()["id"]
        response = caller.complete(claim_job(caller), text="こんにちは。", segments=segments, **fields)
        assert response.status_code == 200, response.json()
        return caller.get(f"/v1/transcriptions/{job_id}").json()

    def test_complete_keeps_words_and_whisper_statistics(self, alice):
        online_worker(alice)
        segment = {"start": 0, "end": 1.0, "text": "こんにちは。", "words": WORDS, **WHISPER_STATISTICS}
        blank = {"word": " ", "start": 1, "end": 1}
        body = self.completed(alice, [{**segment, "speaker": "alice", "words": [*WORDS, blank]}])
        assert body["segments"] == [{**segment, "start": 0.0}], "the rest dropped, the blank word too"
        assert Job.objects.get().segments == body["segments"]

    def test_an_engine_without_a_statistic_sends_null(self, alice):
        online_worker(alice)
        segment = {"start": 0.0, "end": 1.0, "text": "こんにちは。", "seek": 0, "tokens": [], "temperature": 0.0,
                   "avg_logprob": None, "compression_ratio": 0.8, "no_speech_prob": None}
        assert self.completed(alice, [segment])["segments"] == [segment]

    def test_word_text_is_trimmed_and_times_rounded(self, alice):
        online_worker(alice)
        words = [{"word": "  " + "あ" * 150 + " ", "start": 0.12345, "end": 0.5}]
        stored = self.completed(alice, [{"start": 0, "end": 1, "text": "あ", "words": words}])["segments"][0]
        assert stored["words"] == [{"word": "あ" * 100, "start": 0.123, "end": 0.5}]

    def test_word_times_are_kept_inside_their_segment_and_the_clip(self, alice):
        online_worker(alice)
        words = [{"word": "前", "start": -1, "end": 0.5}, {"word": "後", "start": 1.5, "end": 3600}]
        segments = [{"start": 0, "end": 0.4, "text": "前", "words": words[:1]},
                    {"start": 1.0, "end": 3600, "text": "後", "words": words[1:]}]
        stored = self.completed(alice, segments, clip=wav_bytes(2))["segments"]
        assert stored[0]["words"] == [{"word": "前", "start": 0.0, "end": 0.4}]
        assert stored[1]["words"] == [{"word": "後", "start": 1.5, "end": 2.0}]

    @pytest.mark.parametrize(("segment", "param"), [
        ({"words": "こんにちは"}, "segments.0.words"),
        ({"words": [{"word": "こ", "start": 0}]}, "segments.0.words.0.end"),
        ({"words": [{"word": "こ", "start": "0", "end": 1}]}, "segments.0.words.0.start"),
        ({"words": [{"word": 5, "start": 0, "end": 1}]}, "segments.0.words.0"),
        ({"words": [{"word": "こ", "start": 0, "end": 1}] * 2_001}, "segments.0.words"),
        ({"tokens": [1, "2"]}, "segments.0.tokens.1"),
        ({"tokens": [1.5]}, "segments.0.tokens.0"),
        ({"tokens": list(range(1_001))}, "segments.0.tokens"),
        ({"seek": True}, "segments.0.seek"),
        ({"seek": -1}, "segments.0.seek"),
        ({"start": None}, "segments.0.start"),
        ({"avg_logprob": "-0.2"}, "segments.0.avg_logprob"),
        ({"no_speech_prob": [0.1]}, "segments.0.no_speech_prob"),
        ({"text": None}, "segments.0.text"),
        ({"text": ["こ"]}, "segments.0.text"),
    ])
    def test_a_malformed_segment_is_refused_naming_the_field(self, alice, segment, param):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        response = alice.complete(job, segments=[{"start": 0, "end": 1, "text": "こ", **segment}])
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["param"] == param and param in error["message"]
        assert Job.objects.get().status == "leased", "the job stays with its worker"

    def test_a_number_out_of_range_is_refused(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        segments = '[{"start": 0, "end": 1, "text": "こ", "compression_ratio": 1e400}]'  # JSON, read as infinity
        body = f'{{"worker_id": "w1", "lease_id": "{job["lease_id"]}", "text": "こ", "segments": {segments}}}'
        response = alice.client.post(f"/v1/pool/jobs/{job['id']}/complete", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["param"] == "segments.0.compression_ratio"

    def test_a_segment_without_text_is_refused_naming_it(self, alice):
        """A segment is a piece of the text; one without any was accepted and stored as ""."""
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        segments = [{"start": 0, "end": 0.5, "text": "こ"}, {"start": 0.5, "end": 1}]
        response = alice.complete(job, segments=segments)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", "segments.1.text")
        assert "required" in error["message"]
        assert Job.objects.get().status == "leased"
        assert alice.complete(job, segments=[{"start": 0, "end": 1, "text": ""}]).status_code == 200, "empty is text"

    def test_segment_texts_holding_more_than_the_clip_can_are_refused_and_the_job_stays(self, alice):
        """One segment's 5,000 characters were accepted beside a short text for a clip that holds 320."""
        online_worker(alice)
        alice.transcribe(wav_bytes(3))  # holds at most 320 characters
        job = claim_job(alice)
        refused = alice.complete(job, text="あ", segments=[{"start": 0, "end": 3, "text": "あ" * 5_000}])
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "segments"
        assert "segments' texts hold 5,000 characters" in refused.json()["error"]["message"]
        assert "at most 320" in refused.json()["error"]["message"]
        halves = [{"start": 0, "end": 1, "text": "あ" * 200}, {"start": 1, "end": 3, "text": "い" * 121}]
        assert alice.complete(job, text="あ", segments=halves).status_code == 400, "taken together"
        assert Job.objects.get().status == "leased"
        fits = [{"start": 0, "end": 1, "text": "あ" * 200}, {"start": 1, "end": 3, "text": "い" * 120}]
        assert alice.complete(job, text="あ", segments=fits).status_code == 200

    def test_words_holding_more_than_the_clip_can_are_refused_and_the_job_stays(self, alice):
        online_worker(alice)
        alice.transcribe(wav_bytes(3))  # holds at most 320 characters
        job = claim_job(alice)
        words = [{"word": "あ" * 80, "start": 0, "end": 1}] * 5
        refused = alice.complete(job, segments=[{"start": 0, "end": 1, "text": "あ", "words": words}])
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "segments"
        assert "at most 320" in refused.json()["error"]["message"]
        assert Job.objects.get().status == "leased"
        fits = alice.complete(job, segments=[{"start": 0, "end": 1, "text": "あ", "words": words[:4]}])
        assert fits.status_code == 200

    def test_the_engines_warnings_are_kept_on_the_transcription(self, alice):
        online_worker(alice)
        message = "prompt ignored: the Vosk engine takes no prompt"
        body = self.completed(alice, [], warnings=[message])
        assert body["warnings"] == [{"code": "engine_warning", "message": message}]

    @pytest.mark.parametrize("warnings", [["x" * 501], [5], "prompt ignored", ["a"] * 11])
    def test_warnings_are_strings_and_few(self, alice, warnings):
        online_worker(alice)
        alice.transcribe()
        response = alice.complete(claim_job(alice), warnings=warnings)
        assert response.status_code == 400 and response.json()["error"]["param"].startswith("warnings")


class TestRetries:
    def test_a_failed_pool_job_goes_to_another_worker(self, alice, bob, db):
        from tests.helpers import mint_caller

        grant(bob, 100)
        bob.transcribe()
        online_worker(alice, "a1")
        job = claim_job(alice, "a1")
        alice.fail(job, worker_id="a1")
        assert claim_job(alice, "a1") is None, "not back to the worker that failed it"
        charlie = online_worker(mint_caller(ip="192.0.2.3"), "c1")
        assert claim_job(charlie, "c1")["id"] == job["id"]

    def test_a_key_that_failed_a_pool_job_does_not_get_it_back_under_another_worker_id(self, alice, bob):
        grant(bob, 100)
        bob.transcribe()
        online_worker(alice, "a1")
        alice.fail(claim_job(alice, "a1"), worker_id="a1")
        online_worker(alice, "a2")
        assert claim_job(alice, "a2") is None

    def test_one_key_cannot_fail_a_pool_job_for_good_with_many_worker_ids(self, alice, bob, settings):
        settings.JPT_MAX_ATTEMPTS = 3
        grant(bob, 100)
        job_id = bob.transcribe().json()["id"]
        for worker_id in ("k1", "k2", "k3"):
            online_worker(alice, worker_id)
            job = claim_job(alice, worker_id)
            if job is not None:
                alice.fail(job, worker_id=worker_id)
        assert bob.get(f"/v1/transcriptions/{job_id}").json()["status"] == "queued"
        assert bob.get("/v1/account").json()["credits_seconds"] == 97.0, "still held, for a worker of another key"

    def test_a_key_whose_lease_ran_out_does_not_get_the_pool_job_back(self, alice, bob):
        grant(bob, 100)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice, "a1")
        claim_job(alice, "a1")
        Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        online_worker(alice, "a2")
        assert claim_job(alice, "a2") is None
        assert Job.objects.get().status == "queued", "expired, back in the queue, for other keys"

    def test_after_three_failed_attempts_the_job_fails_and_credits_return(self, alice, bob, settings):
        from tests.helpers import mint_caller

        grant(bob, 100)
        job_id = bob.transcribe().json()["id"]
        workers = [online_worker(mint_caller(ip=f"192.0.2.{i}"), f"x{i}") for i in range(3)]
        for i, worker in enumerate(workers):
            job = claim_job(worker, f"x{i}")
            assert job["id"] == job_id
            worker.fail(job, worker_id=f"x{i}")
        body = bob.get(f"/v1/transcriptions/{job_id}").json()
        assert body["status"] == "failed"
        assert body["error"]["code"] == "internal_error" and "retry" in body["error"]["message"].lower()
        assert bob.get("/v1/account").json()["credits_seconds"] == 100.0
        assert not JobAudio.objects.exists()

    def test_an_expired_lease_puts_the_job_back(self, alice, bob):
        grant(bob, 100)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice, "a1")
        job = claim_job(alice, "a1")
        Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        online_worker(bob, "b1")
        # bob's own pool job is claimable by bob's worker too
        again = claim_job(bob, "b1")
        assert again["id"] == job_id and again["lease_id"] != job["lease_id"]
        late = alice.complete(job, worker_id="a1")
        assert late.status_code == 409 and late.json()["error"]["code"] == "lease_lost"

    def test_a_result_whose_lease_ran_out_while_nobody_took_the_job_since_is_kept(self, alice, bob):
        """The worker finished while the server could not hear it (the server was down past the
        lease, or the network was): the job still waits in the queue, so the result is taken."""
        grant(bob, 100)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice, "a1")
        job = claim_job(alice, "a1")
        Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        jobs_expire_leases()
        assert Job.objects.get(pk=job_id).status == "queued"
        late = alice.complete(job, worker_id="a1", text="遅れて届いた結果")
        assert late.status_code == 200, late.json()
        body = bob.get(f"/v1/transcriptions/{job_id}").json()
        assert body["status"] == "completed" and body["text"] == "遅れて届いた結果"
        assert JobAttempt.objects.get(lease_id=job["lease_id"]).outcome == "completed"
        assert bob.get("/v1/account").json()["credits_seconds"] == 97.0, "charged once"
        assert alice.complete(job, worker_id="a1", text="遅れて届いた結果").status_code == 200, "repeatable"

    def test_heartbeats_extend_the_leases_they_name(self, alice, settings):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        Job.objects.filter(pk=job["id"]).update(lease_expires_at=timezone.now() + timedelta(seconds=2))
        beat = alice.heartbeat(leases=[job["lease_id"]]).json()
        assert beat["leases_renewed"] == [job["lease_id"]] and beat["leases_lost"] == []
        remaining = (Job.objects.get().lease_expires_at - timezone.now()).total_seconds()
        assert remaining > 100

    def test_a_worker_going_offline_hands_its_job_back_at_once(self, alice, bob):
        grant(bob, 100)
        bob.transcribe()
        online_worker(alice, "a1")
        claim_job(alice, "a1")
        alice.heartbeat("a1", status="offline")
        assert Job.objects.get().status == "queued"


class TestTranscriptionOptions:
    """The caller's options go with the job to the worker, and on to its engine."""

    ASKED = {"prompt": "配信の挨拶", "temperature": 0.2, "word_timestamps": True}

    def submit(self, caller, options):
        audio = CheckedAudio(wav_bytes(2), "audio/wav", "wav", 2.0)
        return transcription_submit_and_wait(key=caller.key, audio=audio, translate=False, ip=caller.ip, timeout=0,
                                             options=options)

    def test_a_claim_hands_over_the_callers_options(self, alice):
        online_worker(alice)
        job = self.submit(alice, self.ASKED)
        assert Job.objects.get(pk=job.id).options == self.ASKED
        assert claim_job(alice)["options"] == self.ASKED

    def test_a_job_without_options_asks_for_nothing(self, alice):
        online_worker(alice)
        alice.transcribe()
        assert claim_job(alice)["options"] == {"prompt": None, "temperature": None, "word_timestamps": False}

    def test_a_job_stored_before_options_existed_asks_for_nothing(self, alice):
        online_worker(alice)
        alice.transcribe()
        Job.objects.update(options={})
        assert claim_job(alice)["options"] == {"prompt": None, "temperature": None, "word_timestamps": False}

    def test_a_job_without_options_leaves_the_engine_as_it_is(self):
        assert engine_options({"id": "tx_1"}) == engine_options({"options": {"prompt": None}}) == {}
        assert engine_options({"options": {"temperature": 0, "word_timestamps": False}}) == {"temperature": 0.0}

"""Results from strangers' workers are checked by a worker of another key before they count:
a new key's are held until another agrees, a trusted key's are spot-checked, junk is outvoted,
struck and unpaid, and three strikes quarantine a key."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts.credits import credits_balance, credits_pending
from accounts.models import CreditEntry
from pool import leases, verification
from pool.models import Job, JobResult, KeyTrust, Strike
from tests.clips import wav_bytes
from tests.helpers import claim_job, grant, mint_caller, online_worker

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
HONEST = "今日はいい天気ですね。"
JUNK = "ハッキング"


@pytest.fixture
def carol(db):
    return mint_caller(ip="192.0.2.33")


@pytest.fixture
def dave(db):
    return mint_caller(ip="192.0.2.44")


def sent(caller, seconds=3.0, **fields):
    response = caller.transcribe(wav_bytes(seconds), **fields)
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def run(worker, text, worker_id="w1"):
    """The worker takes the next job it may and hands in `text`; the job taken."""
    job = claim_job(worker, worker_id)
    assert job is not None, "nothing to claim"
    assert worker.complete(job, worker_id=worker_id, text=text).status_code == 200
    return job


def shown(caller, job_id):
    return caller.get(f"/v1/transcriptions/{job_id}").json()


def test_a_new_keys_result_is_held_until_another_keys_worker_agrees(alice, bob, carol):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    job_id = sent(alice)
    taken = claim_job(bob)
    assert taken["id"] == job_id
    assert Job.objects.filter(route="pool_check", checks_id=job_id, status="queued").exists(), "checked beside"
    bob.complete(taken, text=HONEST)
    held = shown(alice, job_id)
    assert held["status"] == "processing" and "text" not in held
    check = run(carol, "今日は良い天気ですね")
    assert check["id"] != job_id
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["text"] == HONEST
    assert done["verification"] == {"status": "checked", "agreeing_workers": 2}
    # The caller paid once; each agreeing worker's seconds are spendable at once.
    assert credits_balance(alice.key) == Decimal("27")
    assert (credits_balance(bob.key), credits_balance(carol.key)) == (Decimal("3"), Decimal("3"))
    assert credits_pending(bob.key) == 0
    assert KeyTrust.objects.get(key=bob.key).consecutive_agreements == 1


def test_a_junk_result_is_outvoted_unpaid_and_struck_and_the_caller_gets_the_honest_text(alice, bob, carol, dave):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    online_worker(dave)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    assert shown(alice, job_id)["status"] == "processing", "two disagree: a third run decides"
    decider = Job.objects.get(checks_id=job_id, check_by_trusted=True, status="queued")
    assert run(dave, HONEST)["id"] == decider.id
    done = shown(alice, job_id)
    assert done["text"] == HONEST and done["verification"] == {"status": "checked", "agreeing_workers": 2}
    assert credits_balance(bob.key) == 0 and credits_pending(bob.key) == 0
    assert CreditEntry.objects.filter(key=bob.key, kind="voided").count() == 1
    assert Strike.objects.filter(key=bob.key).count() == 1
    assert not Strike.objects.filter(key__in=[carol.key, dave.key]).exists()
    assert credits_balance(alice.key) == Decimal("27")
    outvoted = JobResult.objects.get(job_id=job_id, key=bob.key)
    assert outvoted.verdict == "outvoted" and outvoted.cer > 0.9


def test_a_new_key_that_never_agrees_is_quarantined_after_three_strikes(alice, bob, carol, dave):
    grant(alice, 60)
    online_worker(bob, trusted=False)
    online_worker(carol)
    online_worker(dave)
    for _ in range(3):
        sent(alice)
        run(bob, JUNK)
        run(carol, HONEST)
        run(dave, HONEST)
    trust = KeyTrust.objects.get(key=bob.key)
    assert trust.level == "quarantined" and trust.strikes == 3
    sent(alice)
    assert claim_job(bob) is None, "a quarantined key's workers take only their own key's jobs"
    own = sent(bob)
    assert claim_job(bob)["id"] == own
    assert verification.quarantine_clear(key_id=bob.key.pk) is True
    assert KeyTrust.objects.get(key=bob.key).level == "new"


def quarantined(caller):
    for n in range(3):
        verification.strike(key_id=caller.key.pk, job=None, reason=f"outvoted ({n})")
    assert KeyTrust.objects.get(key=caller.key).level == "quarantined"


def test_clearing_a_quarantine_clears_the_strikes_behind_it_so_one_more_does_not_quarantine_again(bob):
    quarantined(bob)
    assert verification.quarantine_clear(key_id=bob.key.pk) is True
    assert verification.standing_strikes(bob.key.pk).count() == 0
    assert Strike.objects.filter(key=bob.key, cleared_at__isnull=False).count() == 3, "kept on the record"
    verification.strike(key_id=bob.key.pk, job=None, reason="outvoted again")
    assert KeyTrust.objects.get(key=bob.key).level == "new", "one standing strike, not four"
    for _ in range(2):
        verification.strike(key_id=bob.key.pk, job=None, reason="and again")
    assert KeyTrust.objects.get(key=bob.key).level == "quarantined", "three new strikes still quarantine it"


def test_clearing_a_key_that_is_not_quarantined_changes_nothing(bob, carol):
    """It used to demote a trusted key to new, and forget nothing."""
    verification.trust_grant(key_id=bob.key.pk)
    assert verification.quarantine_clear(key_id=bob.key.pk) is False
    assert KeyTrust.objects.get(key=bob.key).level == "trusted"
    verification.strike(key_id=carol.key.pk, job=None, reason="outvoted")
    assert verification.quarantine_clear(key_id=carol.key.pk) is False
    assert verification.standing_strikes(carol.key.pk).count() == 1, "a strike short of quarantine stands"


def test_vouching_for_a_quarantined_key_also_clears_its_strikes(bob):
    quarantined(bob)
    verification.trust_grant(key_id=bob.key.pk)
    verification.strike(key_id=bob.key.pk, job=None, reason="outvoted on a noisy clip")
    assert KeyTrust.objects.get(key=bob.key).level == "new", "struck once: new again, not quarantined"


def test_ten_agreements_in_a_row_make_a_key_trusted_and_its_results_are_then_delivered_at_once(
    alice, bob, carol, monkeypatch
):
    monkeypatch.setattr(verification.random, "random", lambda: 0.99)  # above 1/10: no spot check drawn
    grant(alice, 100)
    online_worker(bob, trusted=False)
    online_worker(carol)
    for _ in range(KeyTrust.TRUSTED_AFTER):
        sent(alice, 1.0)
        run(bob, HONEST)
        run(carol, HONEST)
    assert KeyTrust.objects.get(key=bob.key).level == "trusted"
    job_id = sent(alice, 1.0)
    run(bob, HONEST)
    assert shown(alice, job_id)["verification"] == {"status": "unchecked", "agreeing_workers": 1}
    assert not Job.objects.filter(checks_id=job_id).exists()
    assert verification.spot_check_rate(KeyTrust.objects.get(key=bob.key)) == pytest.approx(1 / 10)


def test_a_check_of_a_new_key_waits_for_trusted_workers_before_other_new_keys_may_take_it(
    alice, bob, carol, settings
):
    settings.JPT_CHECKS_OPEN_SECONDS = 600
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol, trusted=False)
    sent(alice)
    run(bob, HONEST)
    assert claim_job(carol) is None
    Job.objects.filter(route="pool_check").update(queued_at=timezone.now() - timedelta(seconds=700))
    taken = claim_job(carol)
    assert taken is not None and Job.objects.get(pk=taken["id"]).route == "pool_check"


def test_a_key_never_checks_a_clip_it_ran_itself(alice, bob):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(bob, "w2", trusted=False)
    sent(alice)
    run(bob, HONEST)
    Job.objects.filter(route="pool_check").update(queued_at=timezone.now() - timedelta(seconds=700))
    assert claim_job(bob, "w2") is None


def test_a_spot_check_that_outvotes_a_trusted_result_corrects_it_and_refunds_the_caller(
    alice, bob, carol, dave, settings
):
    grant(alice, 30)
    online_worker(bob)
    online_worker(carol)
    online_worker(dave)
    settings.JPT_SPOT_CHECK_MIN_RATE = 1.0
    job_id = sent(alice)
    run(bob, JUNK)
    delivered = shown(alice, job_id)
    assert delivered["text"] == JUNK and delivered["verification"]["status"] == "unchecked"
    assert credits_balance(alice.key) == Decimal("27")
    settings.JPT_SPOT_CHECK_MIN_RATE = 0
    run(carol, HONEST)
    run(dave, HONEST)
    corrected = shown(alice, job_id)
    assert corrected["text"] == HONEST
    assert corrected["verification"] == {"status": "corrected", "agreeing_workers": 2}
    assert credits_balance(alice.key) == Decimal("30"), "refunded"
    assert KeyTrust.objects.get(key=bob.key).level == "new" and Strike.objects.filter(key=bob.key).exists()
    assert credits_pending(bob.key) == 0 and credits_balance(bob.key) == 0


def test_a_spot_check_that_agrees_confirms_the_result_at_once(alice, bob, carol, settings):
    grant(alice, 30)
    online_worker(bob)
    online_worker(carol)
    settings.JPT_SPOT_CHECK_MIN_RATE = 1.0
    job_id = sent(alice)
    run(bob, HONEST)
    assert credits_pending(bob.key) == Decimal("3")
    settings.JPT_SPOT_CHECK_MIN_RATE = 0
    run(carol, HONEST)
    assert shown(alice, job_id)["verification"] == {"status": "checked", "agreeing_workers": 2}
    assert credits_balance(bob.key) == Decimal("3") and credits_pending(bob.key) == 0


def test_a_result_faster_than_any_engine_is_a_strike_and_is_held(alice, bob, carol, settings):
    settings.JPT_MIN_SECONDS_PER_AUDIO_SECOND = 0.5
    grant(alice, 30)
    online_worker(bob)
    job_id = sent(alice)
    run(bob, HONEST)
    assert shown(alice, job_id)["status"] == "processing"
    assert "faster than any engine" in Strike.objects.get(key=bob.key).reason


def test_a_result_for_a_clip_the_worker_never_received_is_a_strike_and_earns_nothing(alice, bob):
    grant(alice, 30)
    online_worker(bob)
    sent(alice)
    job = bob.claim(inline_audio=False).json()["job"]
    answer = bob.complete(job, text=HONEST)
    assert answer.status_code == 200 and answer.json()["credited_seconds"] == 0
    assert "never fetched" in Strike.objects.get(key=bob.key).reason
    assert credits_pending(bob.key) == 0


def test_a_worker_that_fetched_its_clip_is_not_struck(alice, bob):
    grant(alice, 30)
    online_worker(bob)
    job_id = sent(alice)
    job = bob.claim(inline_audio=False).json()["job"]
    assert bob.audio(job).status_code == 200
    bob.complete(job, text=HONEST)
    assert not Strike.objects.exists() and shown(alice, job_id)["status"] == "completed"


def test_a_text_too_long_for_the_clip_is_refused_and_struck(alice, bob):
    grant(alice, 30)
    online_worker(bob)
    sent(alice, 1.0)
    job = claim_job(bob)
    refused = bob.complete(job, text="あ" * 2000)
    assert refused.status_code == 400
    assert "too long" in Strike.objects.get(key=bob.key).reason


def test_an_empty_transcript_of_a_clip_with_sound_goes_to_a_second_worker(alice, bob, carol):
    grant(alice, 30)
    online_worker(bob)
    online_worker(carol)
    job_id = sent(alice)
    run(bob, "")
    assert shown(alice, job_id)["status"] == "processing"
    run(carol, HONEST)
    assert not Strike.objects.filter(key=bob.key).exists(), "not struck before it is outvoted"
    assert shown(alice, job_id)["status"] == "processing", "one against one: a third decides"


def test_two_new_keys_sending_nothing_for_a_clip_with_sound_do_not_agree_a_trusted_worker_decides(
    alice, bob, carol, dave
):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol, trusted=False)
    online_worker(dave)
    job_id = sent(alice)
    run(bob, "")
    Job.objects.filter(route="pool_check").update(queued_at=timezone.now() - timedelta(seconds=700))
    run(carol, "")
    assert shown(alice, job_id)["status"] == "processing", "two empty transcripts of speech decide nothing"
    decider = Job.objects.get(checks_id=job_id, check_by_trusted=True, status="queued")
    assert run(dave, HONEST)["id"] == decider.id
    done = shown(alice, job_id)
    assert done["text"] == HONEST and done["verification"] == {"status": "unchecked", "agreeing_workers": 1}
    assert Strike.objects.filter(key__in=[bob.key, carol.key]).count() == 2
    assert credits_balance(bob.key) == credits_balance(carol.key) == 0
    assert credits_pending(bob.key) == credits_pending(carol.key) == 0


def test_a_clip_with_sound_is_delivered_empty_when_a_trusted_worker_hears_nothing_either(alice, bob, carol, dave):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol, trusted=False)
    online_worker(dave)
    job_id = sent(alice)
    run(bob, "")
    Job.objects.filter(route="pool_check").update(queued_at=timezone.now() - timedelta(seconds=700))
    run(carol, "")
    run(dave, "")
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["text"] == ""
    assert done["verification"] == {"status": "checked", "agreeing_workers": 3}
    assert not Strike.objects.exists()


def test_an_empty_transcript_of_a_silent_clip_is_delivered(alice, bob):
    grant(alice, 30)
    online_worker(bob)
    response = alice.transcribe(wav_bytes(3.0, silent=True))
    job_id = response.json()["id"]
    run(bob, "")
    assert shown(alice, job_id)["status"] == "completed" and not Strike.objects.exists()


def test_own_workers_and_the_demo_are_never_checked(alice, bob, demo_worker):
    online_worker(alice, trusted=False)
    own = sent(alice)
    run(alice, JUNK)
    assert shown(alice, own)["status"] == "completed"
    demo = sent(bob, 5.0)
    run(demo_worker, HONEST, "demo")
    assert shown(bob, demo)["status"] == "completed"
    assert not Job.objects.filter(route="pool_check").exists() and not JobResult.objects.exists()


def test_pending_seconds_become_spendable_after_the_holding_period(alice, bob, settings):
    grant(alice, 30)
    online_worker(bob)
    sent(alice)
    run(bob, HONEST)
    assert (credits_balance(bob.key), credits_pending(bob.key)) == (0, Decimal("3"))
    assert bob.get("/v1/account").json()["credits_pending_seconds"] == 3.0
    settings.JPT_CREDITS_HOLD_HOURS = 0
    cache.clear()  # the once-a-minute turn was taken by the claims above
    verification.checks_maintenance()
    assert (credits_balance(bob.key), credits_pending(bob.key)) == (Decimal("3"), 0)


def test_undecided_after_the_most_runs_the_transcription_fails_and_is_refunded(alice, bob, carol, settings):
    settings.JPT_CHECK_MAX_RUNS = 2
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    failed = shown(alice, job_id)
    assert failed["status"] == "failed" and "did not agree" in failed["error"]["message"]
    assert credits_balance(alice.key) == Decimal("30")


def overdue(job_id):
    """The deciding run of `job_id` has waited past JPT_CHECK_DECIDER_WAIT_SECONDS, and maintenance has looked."""
    Job.objects.filter(checks_id=job_id, status="queued").update(queued_at=timezone.now() - timedelta(seconds=121))
    verification.checks_maintenance()


def test_a_deciding_run_no_trusted_key_can_take_lets_the_trusted_result_already_in_decide(alice, bob, carol):
    """Carol (trusted) checked Bob's (new) junk; the run meant to decide is for a trusted key that has
    not run the clip, and there is none: the caller is not kept waiting for the queue's hour."""
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    assert claim_job(carol) is None and shown(alice, job_id)["status"] == "processing"
    overdue(job_id)
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["text"] == HONEST
    assert set(Job.objects.filter(checks_id=job_id).values_list("status", flat=True)) >= {"cancelled"}
    assert not Job.objects.filter(checks_id=job_id, status__in=["queued", "leased"]).exists()
    assert credits_balance(carol.key) == Decimal("3") and credits_pending(bob.key) == 0
    assert Strike.objects.filter(key=bob.key).count() == 1 and credits_balance(alice.key) == Decimal("27")


def test_junk_keys_cannot_outvote_the_demo_by_waiting_out_the_deciding_run(alice, bob, carol, demo_worker, settings):
    settings.JPT_CHECKS_OPEN_SECONDS = 0
    grant(alice, 60)
    online_worker(bob, trusted=False)
    online_worker(carol, trusted=False)
    job_id = sent(alice, 31.0)  # longer than the demo runs for callers: a pool job
    run(bob, JUNK)
    run(demo_worker, HONEST, "demo")  # the demo checks it, and cannot run it again
    overdue(job_id)
    assert claim_job(carol) is None, "Bob's accomplice gets no vote: the demo's result decided"
    assert shown(alice, job_id)["text"] == HONEST


def test_a_deciding_run_with_no_trusted_result_in_opens_to_any_other_key(alice, bob, carol, dave, settings):
    settings.JPT_CHECKS_OPEN_SECONDS = 0
    grant(alice, 30)
    for worker in (bob, carol, dave):
        online_worker(worker, trusted=False)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    assert claim_job(dave) is None, "first for trusted keys and the demo"
    overdue(job_id)
    run(dave, HONEST)
    done = shown(alice, job_id)
    assert done["text"] == HONEST and done["verification"] == {"status": "checked", "agreeing_workers": 2}


def test_undecided_after_the_most_runs_a_transcription_nobody_can_decide_fails_and_is_refunded(
    alice, bob, carol, settings
):
    """With no trusted result in and no other key online, each deciding run times out in the queue:
    the caller hears back rather than wait for ever."""
    settings.JPT_CHECKS_OPEN_SECONDS = 0
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol, trusted=False)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    for _ in range(settings.JPT_CHECK_MAX_RUNS):
        Job.objects.filter(checks_id=job_id, status="queued").update(queued_at=timezone.now() - timedelta(hours=2))
        leases.jobs_expire_queued()
        verification.checks_maintenance()
    failed = shown(alice, job_id)
    assert failed["status"] == "failed" and "did not agree" in failed["error"]["message"]
    assert credits_balance(alice.key) == Decimal("30")


def test_a_job_claimed_again_is_weighed_against_the_check_already_in_not_checked_twice(alice, bob, carol, dave):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    online_worker(dave, trusted=False)
    job_id = sent(alice)
    claim_job(bob)  # and never answers: its lease runs out
    run(carol, HONEST)  # the check, meanwhile
    Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    leases.jobs_expire_leases()
    again = claim_job(dave)
    assert again["id"] == job_id
    assert Job.objects.filter(checks_id=job_id).count() == 1, "no second check"
    dave.complete(again, text=HONEST)
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["verification"] == {"status": "checked", "agreeing_workers": 2}


def test_once_a_job_is_decided_its_other_checks_end_unpaid(alice, bob, carol, dave):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    online_worker(dave)
    job_id = sent(alice)
    run(bob, HONEST)
    extra = verification.check_copy_add(Job.objects.get(pk=job_id), by_trusted=False)
    run(carol, HONEST)  # the first check agrees: decided
    assert Job.objects.get(pk=extra.pk).status == "cancelled"
    assert claim_job(dave) is None and credits_pending(dave.key) == 0


def test_no_key_checks_its_own_job(alice, bob):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    job_id = sent(alice)  # no worker of Alice's online: paid from credits
    run(bob, HONEST)
    online_worker(alice)  # trusted, and never ran the clip: but it is her own
    Job.objects.filter(route="pool_check").update(queued_at=timezone.now() - timedelta(seconds=700))
    assert claim_job(alice) is None
    assert shown(alice, job_id)["status"] == "processing"


def test_a_job_its_owners_worker_ends_up_running_is_free_and_its_check_unpaid(alice, bob, carol):
    """Bob (new) took Alice's pool job and went silent; Carol checked it meanwhile; then Alice's own
    worker took it: free for Alice, so nobody is paid for it."""
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    job_id = sent(alice)
    claim_job(bob)
    run(carol, HONEST)
    assert credits_pending(carol.key) == Decimal("3")
    Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    leases.jobs_expire_leases()
    online_worker(alice)
    own = claim_job(alice)
    assert own["id"] == job_id and alice.complete(own, text=HONEST).json()["credited_seconds"] == 0
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["processed_by"] == "self"
    assert credits_balance(alice.key) == Decimal("30")
    assert credits_pending(carol.key) == 0 and credits_balance(carol.key) == 0


def test_a_silent_clip_answered_at_once_is_no_strike(alice, bob, settings):
    """Engines skip silence: how fast a result may come depends on the clip's sound, not its length."""
    settings.JPT_MIN_SECONDS_PER_AUDIO_SECOND = 0.5
    grant(alice, 100)
    online_worker(bob)
    job_id = alice.transcribe(wav_bytes(60.0, rate=8000, silent=True)).json()["id"]  # small enough to come inline
    run(bob, "")
    assert shown(alice, job_id)["status"] == "completed" and not Strike.objects.exists()


def test_sound_without_speech_answered_empty_at_once_is_no_strike(alice, bob, carol, settings):
    """Whisper's voice-activity filter skips music and noise as it skips silence: an empty transcript
    of a clip with sound may come back at once from an honest engine (it is checked as empty
    transcripts of sound are, and struck only if the check hears words)."""
    settings.JPT_MIN_SECONDS_PER_AUDIO_SECOND = 0.5
    grant(alice, 30)
    online_worker(bob)
    online_worker(carol)
    job_id = sent(alice)
    run(bob, "")
    run(carol, "")
    done = shown(alice, job_id)
    assert done["status"] == "completed" and done["verification"] == {"status": "checked", "agreeing_workers": 2}
    assert not Strike.objects.exists()
    assert credits_pending(bob.key) == credits_pending(carol.key) == 0
    assert credits_balance(bob.key) == credits_balance(carol.key) == Decimal("3")


def test_cancelling_a_held_transcription_cancels_its_checks_and_pays_nobody(alice, bob, carol):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    job_id = sent(alice)
    run(bob, HONEST)
    assert credits_pending(bob.key) == Decimal("3")
    assert alice.client.delete(f"/v1/transcriptions/{job_id}").status_code == 200
    assert set(Job.objects.filter(checks_id=job_id).values_list("status", flat=True)) == {"cancelled"}
    assert credits_balance(alice.key) == Decimal("30")
    assert credits_pending(bob.key) == 0 and credits_balance(bob.key) == 0, "refunded seconds are nobody's earnings"
    assert CreditEntry.objects.filter(key=bob.key, kind="voided").count() == 1


def test_checks_are_never_listed_or_shown_to_the_caller(alice, bob):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    job_id = sent(alice)
    run(bob, HONEST)
    check = Job.objects.get(route="pool_check")
    assert [j["id"] for j in alice.get("/v1/transcriptions").json()["data"]] == [job_id]
    assert alice.get(f"/v1/transcriptions/{check.id}").status_code == 404


def test_the_status_page_counts_checks_as_pool_work_not_as_clips(alice, bob, carol, client):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    sent(alice)
    run(bob, HONEST)
    run(carol, HONEST)
    cache.clear()
    figures = client.get("/status.json").json()["last_24h"]
    assert figures["jobs_done"] == 1 and figures["checks_share_of_pool_work"] == 0.5


def test_staff_see_trust_strikes_and_failed_checks_side_by_side(alice, bob, carol, dave, admin_client):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    online_worker(dave)
    job_id = sent(alice)
    run(bob, JUNK)
    run(carol, HONEST)
    run(dave, HONEST)
    trust_page = admin_client.get(f"/admin/pool/keytrust/{bob.key.pk}/change/").content.decode()
    assert "outvoted" in trust_page
    failed = admin_client.get("/admin/pool/jobresult/").content.decode()
    assert JUNK in failed and HONEST in failed and job_id in failed
    cleared = admin_client.post("/admin/pool/keytrust/", {"action": "grant_trust", "_selected_action": [bob.key.pk]})
    assert cleared.status_code == 302 and KeyTrust.objects.get(key=bob.key).level == "trusted"


def test_a_check_looks_to_its_worker_like_any_pool_job(alice, bob, carol):
    grant(alice, 30)
    online_worker(bob, trusted=False)
    online_worker(carol)
    sent(alice)
    original = claim_job(bob)
    check = claim_job(carol)
    assert Job.objects.get(pk=check["id"]).route == "pool_check"
    assert check["route"] == original["route"] == "pool_credit"
    assert set(check) == set(original) and check["duration_seconds"] == original["duration_seconds"]


def test_staff_clearing_quarantines_lift_the_quarantined_keys_and_leave_the_rest(bob, carol, admin_client):
    quarantined(bob)
    verification.trust_grant(key_id=carol.key.pk)
    response = admin_client.post(
        "/admin/pool/keytrust/", {"action": "clear_quarantine", "_selected_action": [bob.key.pk, carol.key.pk]},
        follow=True,
    )
    assert "Cleared the quarantine of 1 keys. 1 were not quarantined and are unchanged." in response.content.decode()
    assert KeyTrust.objects.get(key=bob.key).level == "new"
    assert KeyTrust.objects.get(key=carol.key).level == "trusted"

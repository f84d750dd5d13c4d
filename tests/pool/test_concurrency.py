"""Many workers claiming at once: every job done exactly once, every credit accounted for."""
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.credits import credits_balance, credits_grant, credits_pending
from accounts.models import ApiKey, CreditBalance, CreditEntry
from pool import services as pool
from pool.models import Job, JobAttempt, KeyTrust
from pool.verification import trust_grant
from transcription.intake import CheckedAudio
from tests.helpers import in_threads
from transcription.routing import WorkerRequired, transcription_submit

JOBS = 500
CLAIMERS = 8


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_eight_claimers_complete_500_jobs_exactly_once(settings):
    settings.JPT_WAKEUP_POLL_SECONDS = 0.2
    submitters = [ApiKey.mint()[0] for _ in range(4)]
    for key in submitters:
        credits_grant(key=key, amount=10_000, reason="test")
    workers = [pool.worker_heartbeat(key=ApiKey.mint()[0], client_id=f"w{i}").worker for i in range(CLAIMERS)]
    for worker in workers:  # results delivered at once (checking them is tests/pool/test_verification.py's)
        trust_grant(key_id=worker.key_id)
        KeyTrust.objects.filter(key_id=worker.key_id).update(consecutive_agreements=10**6)
    clip = CheckedAudio(data=b"RIFF-test", content_type="audio/wav", format="WAV", duration_seconds=1.5)

    completed_by = Counter()
    errors = []
    submitted = threading.Event()

    def submit(keys, count):
        try:
            for i in range(count):
                transcription_submit(key=keys[i % len(keys)], audio=clip, translate=False, ip="192.0.2.1")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def claim(worker):
        try:
            while True:
                job = pool.job_claim(worker=worker, wait_seconds=0.5, inline_audio_up_to=1_000_000)
                if job is None:
                    if submitted.is_set() and not Job.objects.filter(status="queued").exists():
                        return
                    continue
                pool.job_complete(worker=worker, job_id=job.id, lease_id=job.lease_id, text="ok", segments=[],
                                  model="test")
                # a retried complete must change nothing
                pool.job_complete(worker=worker, job_id=job.id, lease_id=job.lease_id, text="again", segments=[],
                                  model="test")
                completed_by[job.id] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    claimers = [threading.Thread(target=claim, args=(w,)) for w in workers]
    producers = [threading.Thread(target=submit, args=(submitters[i::2], JOBS // 2)) for i in range(2)]
    for t in claimers + producers:
        t.start()
    for t in producers:
        t.join()
    submitted.set()
    for t in claimers:
        t.join(timeout=120)

    assert not errors, errors[:3]
    assert Job.objects.filter(status="completed").count() == JOBS
    assert len(completed_by) == JOBS and set(completed_by.values()) == {1}
    assert JobAttempt.objects.count() == JOBS, "no job was ever handed to two workers"
    assert set(Job.objects.values_list("text", flat=True)) == {"ok"}

    for kind in ("reserved", "charged", "pending"):
        assert CreditEntry.objects.filter(kind=kind).count() == JOBS, kind
    spent = Decimal("1.5") * JOBS
    assert CreditEntry.objects.filter(key__in=submitters).aggregate(s=Sum("seconds"))["s"] == 40_000 - spent
    assert CreditEntry.objects.filter(key__in=[w.key for w in workers]).aggregate(s=Sum("seconds"))["s"] == spent
    for worker in workers:
        worker.refresh_from_db()
        assert credits_pending(worker.key) == Decimal("1.5") * worker.jobs_done  # spendable once confirmed
    assert_balances_match_the_ledger()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_spot_checks_settling_at_once_across_workers_lose_no_result(settings):
    """Every result spot-checked: each check's completion confirms two keys' earnings, and six
    workers' checks cross (one checks another's job while being checked on its own): none may
    deadlock with another and answer 500, and every credit ends where the ledger says."""
    settings.JPT_WAKEUP_POLL_SECONDS = 0.2
    settings.JPT_SPOT_CHECK_MIN_RATE = 1.0
    jobs = 150
    submitter = ApiKey.mint()[0]
    credits_grant(key=submitter, amount=10_000, reason="test")
    workers = [pool.worker_heartbeat(key=ApiKey.mint()[0], client_id=f"w{i}").worker for i in range(6)]
    for worker in workers:
        trust_grant(key_id=worker.key_id)
    clip = CheckedAudio(data=b"RIFF-test", content_type="audio/wav", format="WAV", duration_seconds=1.5)
    for _ in range(jobs):
        transcription_submit(key=submitter, audio=clip, translate=False, ip="192.0.2.1")
    errors, start = [], threading.Barrier(len(workers))

    def claim(worker):
        start.wait()
        try:
            while (job := pool.job_claim(worker=worker, wait_seconds=0.3, inline_audio_up_to=1_000_000)) or (
                Job.objects.filter(status__in=("queued", "leased")).exists()
            ):
                if job:
                    pool.job_complete(worker=worker, job_id=job.id, lease_id=job.lease_id, text="ok", segments=[],
                                      model="test")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)

    assert not errors, errors[:3]
    originals = Job.objects.filter(route="pool_credit")
    assert originals.filter(status="completed", text="ok", verification="checked").count() == jobs
    assert Job.objects.filter(route="pool_check", status="completed").count() == jobs
    confirmed = CreditEntry.objects.filter(kind="confirmed").aggregate(s=Sum("seconds"))["s"]
    assert confirmed == Decimal("1.5") * jobs * 2, "each run agreed: both keys' earnings spendable"
    assert_balances_match_the_ledger()


def assert_balances_match_the_ledger():
    """Each kept balance is its key's ledger summed, pending earnings left out (not spendable yet)."""
    rows = CreditEntry.objects.exclude(kind__in=CreditEntry.NOT_IN_BALANCE).values("key_id").annotate(s=Sum("seconds"))
    ledger = {row["key_id"]: row["s"] for row in rows}
    kept = {b.key_id: Decimal(b.milliseconds) / 1000 for b in CreditBalance.objects.all()}
    assert kept == {key_id: ledger.get(key_id, Decimal(0)) for key_id in kept}
    assert set(ledger) <= set(kept)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_requests_of_one_key_cannot_spend_the_same_seconds_twice():
    """10 s of credit, 8 threads sending 1.5 s clips at once: exactly 6 are held, the rest are refused."""
    key = ApiKey.mint()[0]
    credits_grant(key=key, amount=10, reason="test")
    clip = CheckedAudio(data=b"RIFF-test", content_type="audio/wav", format="WAV", duration_seconds=1.5)
    outcomes, start = Counter(), threading.Barrier(8)

    def submit():
        start.wait()
        for _ in range(3):
            try:
                transcription_submit(key=key, audio=clip, translate=False, ip="192.0.2.1")
                outcomes["held"] += 1
            except WorkerRequired:
                outcomes["refused"] += 1

    in_threads(submit, 8)
    assert outcomes == {"held": 6, "refused": 18}
    assert credits_balance(key) == Decimal("1.000")
    assert Job.objects.filter(key=key).count() == 6
    assert_balances_match_the_ledger()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_racing_claims_of_one_worker_take_no_more_jobs_than_it_runs_at_once():
    """8 threads of one worker declared to run 2 jobs claim at once from 8 queued jobs: it gets 2."""
    key = ApiKey.mint()[0]
    worker = pool.worker_heartbeat(key=key, client_id="w1", max_jobs=2).worker
    clip = CheckedAudio(data=b"RIFF-test", content_type="audio/wav", format="WAV", duration_seconds=1.5)
    for _ in range(8):
        transcription_submit(key=key, audio=clip, translate=False, ip="192.0.2.1")
    claimed, start = Counter(), threading.Barrier(8)

    def claim():
        start.wait()
        if pool.claim_once(worker) is not None:
            claimed["jobs"] += 1

    in_threads(claim, 8)
    assert claimed["jobs"] == 2
    assert Job.objects.filter(worker=worker, status="leased").count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.parametrize(("workers", "claims", "waiting"), [(5, 5, 3), (1, 2, 1)])
def test_a_key_has_no_more_claims_waiting_than_its_workers_run_jobs(settings, workers, claims, waiting):
    """Each waiting claim holds a server thread: 5 workers of one key may wait 3 at a time (the
    setting), and a lone worker one at a time; the others are refused at once."""
    from jptranscribe.errors import RateLimited
    from pool.workers import worker_for_request

    settings.JPT_CLAIMS_WAITING_PER_KEY = 3
    key = ApiKey.mint()[0]
    for i in range(workers):
        pool.worker_heartbeat(key=key, client_id=f"w{i}")
    outcomes, start, ids = Counter(), threading.Barrier(claims), iter(range(claims))

    def claim():
        worker = worker_for_request(key=key, client_id=f"w{next(ids) % workers}")
        start.wait()
        try:
            pool.job_claim(worker=worker, wait_seconds=1.5)
            outcomes["waited"] += 1
        except RateLimited as refused:
            assert "claims waiting" in refused.message
            outcomes["refused"] += 1

    in_threads(claim, claims)
    assert outcomes == {"waited": waiting, "refused": claims - waiting}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_workers_of_one_key_started_at_once_each_get_a_place_to_wait():
    """A claim counts its key's online workers as it begins. Workers of the key that registered a
    moment later may be waiting already when it takes its place: it counts again, and waits, rather
    than being refused (the worker client would sit out the Retry-After, 50 s)."""
    import time

    from jptranscribe.cache import count
    from pool.workers import worker_for_request

    key = ApiKey.mint()[0]
    pool.worker_heartbeat(key=key, client_id="w0")
    early = worker_for_request(key=key, client_id="w0")  # the key's places counted: one
    later = [pool.worker_heartbeat(key=key, client_id=f"w{i}").worker for i in (1, 2)]
    answered = []

    def wait_for_a_job(worker):
        try:
            answered.append(pool.job_claim(worker=worker_for_request(key=key, client_id=worker.client_id),
                                           wait_seconds=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=wait_for_a_job, args=(worker,)) for worker in later]
    for thread in threads:
        thread.start()
    waiting = [f"jpt:places:claims:{key.pk}"]
    deadline = time.monotonic() + 4
    while count(waiting, 0, 300) != [2] and time.monotonic() < deadline:  # until both wait
        time.sleep(0.02)
    assert count(waiting, 0, 300) == [2], "the later workers' claims are not both waiting"
    assert pool.job_claim(worker=early, wait_seconds=0.2) is None  # waited its 0.2 s: not refused
    for thread in threads:
        thread.join()
    assert answered == [None, None]


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_key_has_only_so_many_transcribe_calls_waiting_and_loses_none(settings):
    """With one waiting place per key, of two calls at once one waits and one answers at once;
    both clips are queued."""
    import time

    from transcription.services import transcription_submit_and_wait

    settings.JPT_TRANSCRIBE_WAITING_PER_KEY = 1
    key = ApiKey.mint()[0]
    pool.worker_heartbeat(key=key, client_id="w1")  # online, but claiming nothing
    clip = CheckedAudio(data=b"RIFF-test", content_type="audio/wav", format="WAV", duration_seconds=1.5)
    waits, start = [], threading.Barrier(2)

    def transcribe():
        start.wait()
        began = time.monotonic()
        job = transcription_submit_and_wait(key=key, audio=clip, translate=False, ip="192.0.2.1", timeout=1.5)
        waits.append((round(time.monotonic() - began, 1), job.status))

    in_threads(transcribe, 2)
    (quick, quick_status), (slow, slow_status) = sorted(waits)
    assert quick < 0.5 <= 1.4 <= slow, waits
    assert quick_status == slow_status == "queued"
    assert Job.objects.filter(key=key, status="queued").count() == 2

"""Many workers claiming at once: every job done exactly once, every credit accounted for."""
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.credits import credits_grant
from accounts.models import ApiKey, CreditEntry
from pool import services as pool
from pool.models import Job, JobAttempt
from transcription.intake import CheckedAudio
from transcription.routing import transcription_submit

JOBS = 500
CLAIMERS = 8


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_eight_claimers_complete_500_jobs_exactly_once(settings):
    settings.JPT_WAKEUP_POLL_SECONDS = 0.2
    submitters = [ApiKey.mint()[0] for _ in range(4)]
    for key in submitters:
        credits_grant(key=key, amount=10_000, reason="test")
    workers = [pool.worker_heartbeat(key=ApiKey.mint()[0], client_id=f"w{i}") for i in range(CLAIMERS)]
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
                job = pool.job_claim(worker=worker, wait_seconds=0.5)
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

    for kind in ("reserved", "charged", "earned"):
        assert CreditEntry.objects.filter(kind=kind).count() == JOBS, kind
    spent = Decimal("1.5") * JOBS
    assert CreditEntry.objects.filter(key__in=submitters).aggregate(s=Sum("seconds"))["s"] == 40_000 - spent
    assert CreditEntry.objects.filter(key__in=[w.key for w in workers]).aggregate(s=Sum("seconds"))["s"] == spent
    for worker in workers:
        worker.refresh_from_db()
        assert worker.key.credit_balance() == Decimal("1.5") * worker.jobs_done

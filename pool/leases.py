"""How a job leaves a worker's hands without a result: back to the queue, or failed for good
with everything it held given back; and the expiry that finds leases nobody renews."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from accounts import credits, quotas
from jptranscribe.cache import UNREACHABLE
from jptranscribe.errors import ServiceError
from jptranscribe.sql import db_datetime, run
from pool import policy, wakeup
from pool import statements as sql
from pool.models import Job, JobAttempt, JobAudio, Worker

log = logging.getLogger(__name__)
Status = Job.Status
ERROR_LENGTH = 500


class LeaseLost(ServiceError, status=409, code="lease_lost"):
    """A worker touched a job it no longer holds."""


def end_attempt(job: Job, outcome: str, error: str) -> None:
    """Close the running attempt of the job's current lease."""
    run(
        sql.END_ATTEMPT,
        {
            "outcome": outcome,
            "now": db_datetime(timezone.now()),
            "error": error[:ERROR_LENGTH],
            "lease_id": job.lease_id,
        },
    )


def requeue(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED, worker=None, lease_id="", lease_expires_at=None)
    job.status = Status.QUEUED
    wakeup.announce(wakeup.job_queued_channel(job))


def retry_or_fail(job: Job, error: str) -> None:
    tries = _failed_tries(job)
    if policy.after_failure(tries) is policy.AfterFailure.GIVE_UP:
        job_finish_failed(job, f"Transcription failed after {tries} attempts ({error}).")
    else:
        requeue(job)


def _failed_tries(job: Job) -> int:
    """A pool job counts the keys whose workers failed it or let it expire, each once (a key never
    gets it back, and worker ids cost nothing); one's own or a demo job counts its attempts."""
    if job.route != Job.Route.POOL_CREDIT:
        return job.attempts
    ended = [JobAttempt.Outcome.FAILED, JobAttempt.Outcome.EXPIRED]
    return JobAttempt.objects.filter(job=job, outcome__in=ended).values("worker__key_id").distinct().count()


# A cancelled job's error code, whoever cancelled it: a `transcribe` call waiting for it answers 409
# with it, and polling shows it (never `internal_error`, whose callers are told to retry).
CANCELLED_CODE = "cancelled"


def job_finish_failed(job: Job, error: str, *, status: str = Status.FAILED, code: str = "internal_error") -> None:
    """End a job without a result, giving back the credits and the demo it held. Call in a transaction."""
    error = error[:ERROR_LENGTH]
    Job.objects.filter(pk=job.pk).update(
        status=status, error=error, error_code=code, finished_at=timezone.now(), worker=None, lease_expires_at=None
    )
    job.status, job.error, job.error_code = status, error, code
    JobAudio.objects.filter(job=job).delete()
    credits.credits_refund(job_ref=job.id, reason=error[:300])
    if job.route == Job.Route.SERVER_DEMO and job.demo_day and job.client_ip:
        quotas.quota_give_back(scope=quotas.DEMOS, subject=job.client_ip, day=job.demo_day)
    wakeup.announce(wakeup.job_done_channel(job.id))


def requeue_held_jobs(worker: Worker, *, reason: str) -> None:
    """The worker is gone (it signed off or was banned): what it held goes back to the queue."""
    for job in Job.objects.select_for_update().filter(worker=worker, status=Status.LEASED):
        end_attempt(job, JobAttempt.Outcome.ABANDONED, reason)
        requeue(job)


def take_back_held_jobs(worker: Worker, *, reason: str) -> None:
    """The worker's process died holding these (it came back as a new session): back to the queue
    at once, the attempt counted as a lease that ran out, as it would have."""
    for job in Job.objects.select_for_update().filter(worker=worker, status=Status.LEASED):
        end_attempt(job, JobAttempt.Outcome.EXPIRED, reason)
        retry_or_fail(job, reason)


def renew(worker: Worker, lease_ids: Collection[str], now: datetime) -> list[str]:
    """Renew the named leases the worker still holds (each up to its hard limit); the others it
    holds are left to run out. Returns the lease ids renewed."""
    if not lease_ids:
        return []
    held = Job.objects.filter(
        worker=worker, status=Status.LEASED, lease_id__in=list(lease_ids), lease_expires_at__gte=now
    )
    renewed = list(held.values_list("lease_id", flat=True))
    if renewed:
        until = Value(policy.lease_expires_at(now), output_field=DateTimeField())
        held.filter(lease_id__in=renewed).update(
            lease_expires_at=Least(until, Coalesce(F("lease_hard_expires_at"), until))
        )
    return renewed


# --- Expiry ---------------------------------------------------------------------------------------

EXPIRY_BATCH = 100
# The attempt's error when its worker stopped renewing its lease (as opposed to its hard limit, or a
# new session of the worker taking it back): a completion may still come (pool.services).
WENT_SILENT = "lease expired"


def jobs_expire_leases() -> int:
    """Put jobs whose worker went silent back in the queue (or fail them after the last attempt)."""
    now = timezone.now()
    expired = 0
    ids = list(
        Job.objects.filter(status=Status.LEASED, lease_expires_at__lt=now).values_list("pk", flat=True)[:EXPIRY_BATCH]
    )
    for job_id in ids:
        with transaction.atomic():
            job = (
                Job.objects.select_for_update(skip_locked=True)
                .filter(pk=job_id, status=Status.LEASED, lease_expires_at__lt=now)
                .first()
            )
            if job is None:
                continue
            if policy.lease_has_expired(job.lease_hard_expires_at, now):
                limit = f"{settings.JPT_LEASE_MAX_SECONDS / 60:g} min"
                end_attempt(job, JobAttempt.Outcome.EXPIRED, f"the lease reached its hard limit ({limit})")
                retry_or_fail(job, f"no worker finished it within the {limit} a lease may last")
            else:
                end_attempt(job, JobAttempt.Outcome.EXPIRED, WENT_SILENT)
                retry_or_fail(job, "the worker went silent")
            expired += 1
    if expired:
        log.info("re-queued %d jobs whose lease expired", expired)
    return expired


def jobs_expire_queued() -> int:
    """Fail jobs no worker took in time, so their callers hear back and their credits return."""
    cutoff = policy.queued_since_cutoff(timezone.now())
    expired = 0
    ids = list(
        Job.objects.filter(status=Status.QUEUED, queued_at__lt=cutoff).values_list("pk", flat=True)[:EXPIRY_BATCH]
    )
    for job_id in ids:
        with transaction.atomic():
            job = Job.objects.select_for_update(skip_locked=True).filter(pk=job_id, status=Status.QUEUED).first()
            if job is not None:
                minutes = settings.JPT_QUEUE_TIMEOUT_SECONDS / 60
                job_finish_failed(job, f"No worker took this job within {minutes:g} minutes; please retry.")
                expired += 1
    return expired


class _Turns:
    """At most one expiry run an interval across all processes: the shared cache holds the turn,
    and this process's clock spares asking the cache on every request."""

    def __init__(self) -> None:
        self.last = 0.0

    def take(self) -> bool:
        interval = settings.JPT_MAINTENANCE_INTERVAL_SECONDS
        if time.monotonic() - self.last < interval:
            return False
        self.last = time.monotonic()
        try:
            return cache.add("jpt:pool-maintenance", 1, timeout=interval)
        except UNREACHABLE as lost:  # nobody's turn: the upkeep waits for the cache, the request does not
            log.warning("pool upkeep skipped: the shared cache is unreachable (%s)", lost)
            return False


_turns = _Turns()


_more_maintenance: list[Callable[[], None]] = []


def on_maintenance(task: Callable[[], None]) -> None:
    """Run `task` in each maintenance turn too (registered by the pool's AppConfig: checks of results)."""
    if task not in _more_maintenance:
        _more_maintenance.append(task)


def pool_maintenance() -> None:
    """Expire leases and stale queued jobs, when it is this process's turn. Claims and waiting
    transcribe calls call it, so the pool keeps moving without a cron job."""
    if _turns.take():
        jobs_expire_leases()
        jobs_expire_queued()
        for task in _more_maintenance:
            task()

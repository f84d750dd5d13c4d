"""Which worker a pool call speaks for, and whose workers are online."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import ApiKey
from jptranscribe.errors import ServiceError
from jptranscribe.sql import db_datetime, instance, run
from pool import statements as sql
from pool.models import Job, Worker, online_since

# A worker's last-seen time is written at most this often: every pool call passes here.
SEEN_GRANULARITY_SECONDS = 5


class WorkerNotRegistered(ServiceError, status=409, code="worker_not_registered"):
    """A pool call from a worker that has not sent a heartbeat, or whose registration ran out."""


class WorkerBanned(ServiceError, status=403, code="worker_banned"):
    """An operator stopped this key from running workers."""


class WorkerBusy(ServiceError, status=409, code="worker_busy"):
    """A claim from a worker that already holds as many jobs as it said it runs at once."""


def refuse_banned(key: ApiKey) -> None:
    if key.workers_banned_at:
        raise WorkerBanned("This key may no longer run workers. Contact the operators.")


def worker_for_request(*, key: ApiKey, client_id: str) -> Worker:
    """The registered worker a pool call speaks for (always one of the caller's own key's); refreshes
    its last-seen time."""
    refuse_banned(key)
    answer = run(
        sql.WORKER_BY_CLIENT_ID,
        {"key_id": key.pk, "client_id": client_id, "online_since": db_datetime(online_since())},
    )
    worker = instance(Worker, answer.columns, answer.row) if answer.row is not None else None
    if worker is None or not worker.is_registered:
        raise WorkerNotRegistered("Unknown or expired worker: send a heartbeat first.")
    worker.held_jobs, worker.key_places = answer.value("held_jobs"), answer.value("key_places")
    return worker_seen(worker, key)


def worker_seen(worker: Worker, key: ApiKey) -> Worker:
    worker.key = key
    now = timezone.now()
    if (now - worker.last_seen_at).total_seconds() > SEEN_GRANULARITY_SECONDS:
        run(sql.WORKER_SEEN, {"now": db_datetime(now), "worker_pk": worker.pk})
        worker.last_seen_at = now
    return worker


def workers_online(key: ApiKey) -> tuple[bool, bool]:
    """(this key has a worker online, the server's demo worker is online): routing asks on every request."""
    answer = run(sql.WORKERS_ONLINE, {"key_id": key.pk, "since": db_datetime(online_since())})
    return answer.value("own") > 0, answer.value("demo") > 0


def pool_stats() -> dict[str, int]:
    """The figures /v1/health, /v1/account and /status/ show: volunteers online, jobs waiting."""
    return {
        "workers_online": Worker.objects.online().filter(key__is_server=False).count(),
        "jobs_queued": Job.objects.filter(status=Job.Status.QUEUED).count(),
    }

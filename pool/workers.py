"""Which worker a pool call speaks for, and whose workers are online."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.utils import timezone

from accounts.models import ApiKey
from jptranscribe.errors import ServiceError
from jptranscribe.sql import db_datetime, instance, run
from pool import policy
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
        expires_at = policy.registration_expires_at(now)
        run(sql.WORKER_SEEN, {"now": db_datetime(now), "expires_at": db_datetime(expires_at), "worker_pk": worker.pk})
        worker.last_seen_at, worker.expires_at = now, expires_at
    return worker


def key_places(key_id: int) -> int:
    """How many claims of this key may wait at a time, counted now (see `worker_for_request`)."""
    return run(sql.KEY_PLACES, {"key_id": key_id, "online_since": db_datetime(online_since())}).value("key_places")


def workers_online(key: ApiKey) -> tuple[bool, bool]:
    """(this key has a worker online, the server's demo worker is online): routing asks on every request."""
    answer = run(sql.WORKERS_ONLINE, {"key_id": key.pk, "since": db_datetime(online_since())})
    return bool(answer.value("own")), bool(answer.value("demo"))


# The pool figures are two COUNTs over tables as large as the pool: they are counted at most
# once a second per deployment and kept in the shared cache, which every app server reads.
POOL_STATS_CACHE = "jpt:pool-stats"
POOL_STATS_SECONDS = 1.0
# The figures' clock (wall time: app servers share the figures); tests move it on.
clock = time.time


def key_workers_online(key: ApiKey) -> int:
    """How many of this key's workers are online (`WorkerQuerySet.online`), for /v1/account."""
    return run(sql.KEY_WORKERS_ONLINE, {"key_id": key.pk, "since": db_datetime(online_since())}).value("online")


def pool_stats() -> dict[str, int]:
    """The figures /v1/health, /v1/account and /status/ show: volunteers online, jobs waiting, as
    counted less than POOL_STATS_SECONDS ago. One request a second counts them again; the others
    meanwhile read the figures it is replacing."""
    kept = cache.get(POOL_STATS_CACHE)
    if kept is not None:
        counted_at, figures = kept
        # Counted "in the future" is another server's clock running ahead: counted again, at most
        # once a second as any other (the place to count is taken for a second).
        if 0 <= clock() - counted_at < POOL_STATS_SECONDS or not cache.add(
            f"{POOL_STATS_CACHE}:counting", True, int(POOL_STATS_SECONDS)
        ):
            return figures
    figures = pool_stats_counted()
    cache.set(POOL_STATS_CACHE, (clock(), figures), 3600)
    return figures


def pool_stats_counted() -> dict[str, int]:
    """The pool figures counted now (two COUNTs)."""
    return {
        "workers_online": Worker.objects.online().filter(key__is_server=False).count(),
        "jobs_queued": Job.objects.filter(status=Job.Status.QUEUED).count(),
    }

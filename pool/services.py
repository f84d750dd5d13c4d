"""The job pool: registering workers, claiming with leases, finishing jobs.

Every state change is an UPDATE guarded by the state it expects (`status=…`,
`lease_id=…`), so two servers or two threads can never both move one job.
"""
from __future__ import annotations

import functools
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts import credits, quotas
from accounts.models import ApiKey
from jptranscribe.errors import NotFound, ServiceError
from pool import wakeup
from pool.models import Job, JobAttempt, JobAudio, Worker, new_lease_id

log = logging.getLogger(__name__)

Status = Job.Status
Route = Job.Route


class WorkerNotRegistered(ServiceError):
    status = 409
    code = "worker_not_registered"


class WorkerBanned(ServiceError):
    status = 403
    code = "worker_banned"


class LeaseLost(ServiceError):
    status = 409
    code = "lease_lost"


JOB_TABLE = Job._meta.db_table
WORKER_TABLE = Worker._meta.db_table
ATTEMPT_TABLE = JobAttempt._meta.db_table
AUDIO_TABLE = JobAudio._meta.db_table
# Named, never `*`: PostgreSQL refuses to run a prepared `SELECT *` once a migration has added a
# column ("cached plan must not change result type"), which would break the app servers still
# running the old code during a rolling deploy until their connections were recycled.
JOB_COLUMNS = ", ".join(connection.ops.quote_name(f.column) for f in Job._meta.concrete_fields)
START_ATTEMPT = f"INSERT INTO {ATTEMPT_TABLE} (job_id, worker_id, lease_id, started_at, outcome, error)"
END_ATTEMPT = f"UPDATE {ATTEMPT_TABLE} SET outcome = %s, ended_at = %s, error = %s WHERE lease_id = %s AND outcome = %s"


# The hot path (submit, claim, audio, complete) runs plain SQL. On PostgreSQL each of its steps is one
# statement (data-modifying WITH), a round trip each; SQLite, which has no such WITH, runs them one by one.
def _execute(sql, params) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _load(model, sql, params):
    """The first row of `sql` as a `model` instance (None without one): what `Model.objects.raw()`
    does, minus the per-call set-up that cost more than the query. Columns the statement
    leaves out are deferred, and load on access like any deferred field."""
    columns, row = _fetch(sql, params)
    return _instance(model, columns, row) if row is not None else None


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        return (tuple(col[0] for col in cursor.description) if row is not None else ()), row


def _instance(model, columns, row):
    """The row's columns that are `model`'s fields, as an instance (other columns are ignored)."""
    attnames, layout = _row_layout(model, columns, connection.vendor)
    values = []
    for pos, convs, col in layout:
        value = row[pos]
        for convert in convs:
            value = convert(value, col, connection)
        values.append(value)
    return model.from_db(connection.alias, attnames, values)


@functools.cache
def _row_layout(model, columns, vendor):
    """For a row shape: the field names in the model's order (what `from_db` wants), and for each
    its column's position and database-to-Python converters (model metadata only, no state)."""
    attnames, layout = [], []
    for field in model._meta.concrete_fields:
        if field.column in columns:
            col = field.get_col(model._meta.db_table)
            attnames.append(field.attname)
            layout.append((columns.index(field.column), connection.ops.get_db_converters(col)
                           + col.get_db_converters(connection), col))
    return attnames, layout


def _insert_statement(obj):
    """INSERT one new model instance with every field, as `save(force_insert=True)` would for a
    model without an auto primary key or save signals, minus the ORM's query building."""
    fields = obj._meta.concrete_fields
    sql = (f"INSERT INTO {obj._meta.db_table} ({', '.join(connection.ops.quote_name(f.column) for f in fields)})"
           f" VALUES ({', '.join(['%s'] * len(fields))})")
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _dt(value):
    """A datetime as the database column takes it (SQLite stores naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _for_update():
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


# --- Workers ------------------------------------------------------------------


def worker_heartbeat(*, key: ApiKey, client_id: str, name="", engine="", model="", version="",
                     going_offline=False) -> Worker:
    """Register or refresh a worker and extend the lease of the job it holds."""
    _refuse_banned(key)
    now = timezone.now()
    fields = {"name": name, "engine": engine, "model": model, "version": version, "last_seen_at": now}
    if going_offline:
        fields["signed_off_at"] = now
        fields["expires_at"] = now
    else:
        fields["signed_off_at"] = None
        fields["expires_at"] = now + timedelta(seconds=settings.JPT_WORKER_TTL_SECONDS)
    with transaction.atomic():
        worker, _ = Worker.objects.update_or_create(key=key, client_id=client_id, defaults=fields)
        if going_offline:
            # A worker that says goodbye leaves nothing to wait for a lease.
            _requeue_held_jobs(worker, reason="worker went offline")
        else:
            Job.objects.filter(worker=worker, status=Status.LEASED).update(
                lease_expires_at=now + timedelta(seconds=settings.JPT_LEASE_SECONDS)
            )
    return worker


# What pool calls use of their worker; the other fields are deferred.
WORKER_COLUMNS = "w.id, w.key_id, w.client_id, w.model, w.last_seen_at, w.expires_at, w.signed_off_at"


def worker_for_request(*, key: ApiKey, client_id: str) -> Worker:
    """The registered worker a pool call speaks for; refreshes its last-seen time.

    Every worker call starts here, so it is plain SQL (the ORM's query building
    costs ten times the query). The worker's key is the caller's own key.
    """
    _refuse_banned(key)
    worker = _load(Worker, f"SELECT {WORKER_COLUMNS} FROM {WORKER_TABLE} w WHERE w.key_id = %s AND w.client_id = %s",
                   [key.pk, client_id])
    if worker is None or not worker.is_registered:
        raise WorkerNotRegistered("Unknown or expired worker: send a heartbeat first.")
    return _seen(worker, key)


def _refuse_banned(key: ApiKey):
    if key.workers_banned_at:
        raise WorkerBanned("This key may no longer run workers. Contact the operators.")


def _seen(worker: Worker, key: ApiKey) -> Worker:
    worker.key = key
    now = timezone.now()
    if (now - worker.last_seen_at).total_seconds() > 5:
        _execute(f"UPDATE {WORKER_TABLE} SET last_seen_at = %s WHERE id = %s", [_dt(now), worker.pk])
        worker.last_seen_at = now
    return worker


def worker_ban(*, key: ApiKey):
    """Stop a key's workers: they can no longer claim, and the jobs they hold go back to the queue."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(workers_banned_at=timezone.now())
        for worker in Worker.objects.filter(key=key):
            _requeue_held_jobs(worker, reason="worker banned")
    key.forget_cached()


def _requeue_held_jobs(worker: Worker, *, reason: str):
    for job in Job.objects.select_for_update().filter(worker=worker, status=Status.LEASED):
        _end_attempt(job, JobAttempt.Outcome.ABANDONED, reason)
        _requeue(job)


# --- Submitting ------------------------------------------------------------------


def job_submit(*, key: ApiKey, route: str, route_reason: str, audio: bytes, content_type: str,
               audio_format: str, duration_seconds, translate: bool, client_ip=None, demo_day=None,
               job_id=None) -> Job:
    """Queue a routed clip. Called inside the routing transaction, so the credit hold,
    the demo quota and the job stand or fall together."""
    job = Job(key=key, route=route, route_reason=route_reason, audio_format=audio_format,
              duration_seconds=duration_seconds, translate=translate, client_ip=client_ip, demo_day=demo_day)
    if job_id:
        job.id = job_id
    sql, params = _insert_statement(job)
    if connection.vendor == "postgresql":  # one statement, one round trip
        _execute(f"WITH job AS ({sql} RETURNING id) INSERT INTO {AUDIO_TABLE} (job_id, data, content_type)"
                 f" SELECT id, %s, %s FROM job", [*params, audio, content_type])
    else:
        _execute(sql, params)
        _execute(f"INSERT INTO {AUDIO_TABLE} (job_id, data, content_type) VALUES (%s, %s, %s)",
                 [job.id, audio, content_type])
    job._state.adding, job._state.db = False, connection.alias
    wakeup.announce(_queue_channel(job))
    return job


def _queue_channel(job: Job) -> str:
    if job.route == Route.SERVER_DEMO:
        return "queued:demo"
    if job.route == Route.POOL_SELF:
        return f"queued:self:{job.key_id}"
    return "queued:credit"


def _claim_channels(worker: Worker):
    if worker.key.is_server:
        return ["queued:demo"]
    return [f"queued:self:{worker.key_id}", "queued:credit"]


# --- Claiming ----------------------------------------------------------------------


def _claim_statement(worker: Worker):
    """One UPDATE … RETURNING that picks the best queued job for this worker and leases it.

    Its own jobs first, then pool jobs oldest first (never one that already failed
    on this worker); the demo worker takes demo jobs only. On PostgreSQL the pick
    skips rows another claimer has locked; SQLite serialises writers anyway.
    """
    if worker.key.is_server:
        where, order, params = "route = 'server_demo'", "queued_at", []
    else:
        where = (
            f"(route = 'pool_self' AND key_id = %s) OR (route = 'pool_credit' AND NOT EXISTS ("
            f"SELECT 1 FROM {ATTEMPT_TABLE} a WHERE a.job_id = {JOB_TABLE}.id AND a.worker_id = %s"
            f" AND a.outcome = 'failed'))"
        )
        order = "CASE WHEN route = 'pool_self' THEN 0 ELSE 1 END, queued_at"
        params = [worker.key_id, worker.id]
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    key_table = ApiKey._meta.db_table
    sql = (
        f"UPDATE {JOB_TABLE} SET status = 'leased', worker_id = %s, lease_id = %s, lease_expires_at = %s,"
        f" attempts = attempts + 1"
        f" WHERE id = (SELECT id FROM {JOB_TABLE} WHERE status = 'queued' AND ({where})"
        f" ORDER BY {order} LIMIT 1{skip_locked}) AND status = 'queued'"
        # A worker that signed off, or whose key was banned or revoked, while its long-poll
        # was still open gets nothing.
        f" AND EXISTS (SELECT 1 FROM {WORKER_TABLE} w JOIN {key_table} k ON k.id = w.key_id"
        f" WHERE w.id = %s AND w.signed_off_at IS NULL AND k.workers_banned_at IS NULL AND k.revoked_at IS NULL)"
        f" RETURNING {JOB_COLUMNS}"
    )
    return sql, params


def _claim_once(worker: Worker, inline_audio_up_to: int = 0) -> Job | None:
    sql, where_params = _claim_statement(worker)
    now = timezone.now()
    lease_id = new_lease_id()
    expires = now + timedelta(seconds=settings.JPT_LEASE_SECONDS)
    params = [worker.id, lease_id, _dt(expires), *where_params, worker.id]
    attempt = [worker.id, lease_id, _dt(now), JobAttempt.Outcome.RUNNING]
    if connection.vendor == "postgresql":
        # One statement, so one round trip and no transaction around it: the lease, its attempt
        # row and the audio (when asked for) together.
        audio = (f", (SELECT data FROM {AUDIO_TABLE} WHERE job_id = claimed.id AND length(data) <= %s)"
                 if inline_audio_up_to > 0 else ", NULL")
        columns, row = _fetch(
            f"WITH claimed AS ({sql}),"
            f" attempt AS ({START_ATTEMPT} SELECT id, %s, %s, %s, %s, '' FROM claimed)"
            f" SELECT {JOB_COLUMNS}{audio} FROM claimed",
            [*params, *attempt, *([inline_audio_up_to] if inline_audio_up_to > 0 else [])],
        )
        if row is None:
            return None
        job = _instance(Job, columns, row)
        job.inline_audio = bytes(row[-1]) if row[-1] is not None else None
        return job
    with transaction.atomic():
        job = _load(Job, sql, params)
        if job is None:
            return None
        _execute(f"{START_ATTEMPT} VALUES (%s, %s, %s, %s, %s, '')", [job.id, *attempt])
    job.inline_audio = None
    if inline_audio_up_to > 0:
        _, row = _fetch(f"SELECT data FROM {AUDIO_TABLE} WHERE job_id = %s AND length(data) <= %s",
                        [job.id, inline_audio_up_to])
        job.inline_audio = bytes(row[0]) if row is not None else None
    return job


def job_claim(*, worker: Worker, wait_seconds: float, inline_audio_up_to: int = 0) -> Job | None:
    """Hand the worker one job, waiting up to `wait_seconds` for one to arrive.

    The job's `inline_audio` is its audio when that is at most `inline_audio_up_to` bytes
    (else None), so a small clip needs no request of its own. While waiting, the thread
    holds no database connection (it goes back to the pool) and sleeps until a wake-up
    for a channel this worker can serve.
    """
    deadline = time.monotonic() + max(0.0, min(wait_seconds, settings.JPT_CLAIM_WAIT_MAX_SECONDS))
    channels = _claim_channels(worker)
    while True:
        with wakeup.hub.listening(channels) as woken:
            pool_maintenance()
            job = _claim_once(worker, inline_audio_up_to)
            if job is not None:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0 or wakeup.hub.closing:
                return None
            wakeup.release_connection()
            woken.wait(min(remaining, settings.JPT_WAKEUP_POLL_SECONDS))


# --- Holding a job -----------------------------------------------------------------


def _held_job(*, worker: Worker, job_id: str, lease_id: str, lock=False) -> Job:
    """The job, if this worker holds it with this lease (or finished it with it).

    A stranger learns nothing: a job it never held is simply not found.
    """
    job = _load(Job, f"SELECT {JOB_COLUMNS} FROM {JOB_TABLE} WHERE id = %s" + (_for_update() if lock else ""), [job_id])
    if job is None:
        raise NotFound("No such job.")
    if job.worker_id == worker.id and job.lease_id == lease_id and lease_id:
        return job
    if JobAttempt.objects.filter(job_id=job_id, worker=worker).exists():
        raise LeaseLost("This job is no longer yours: its lease expired or it was re-assigned.")
    raise NotFound("No such job.")


def job_reload(job: Job) -> Job:
    """The job's row read again, keeping the key object it already has."""
    fresh = _load(Job, f"SELECT {JOB_COLUMNS} FROM {JOB_TABLE} WHERE id = %s", [job.pk])
    if fresh is None:
        raise Job.DoesNotExist(f"No job {job.pk}.")
    fresh.key = job.key
    return fresh


def job_audio(*, key: ApiKey, client_id: str, job_id: str, lease_id: str) -> JobAudio:
    """The audio of a job the caller's worker holds: one query finds the worker through the job,
    and only when that finds nothing does the long way round say why."""
    _refuse_banned(key)
    columns, row = _fetch(
        f"SELECT {WORKER_COLUMNS}, a.data, a.content_type FROM {AUDIO_TABLE} a"
        f" JOIN {JOB_TABLE} j ON j.id = a.job_id JOIN {WORKER_TABLE} w ON w.id = j.worker_id"
        f" WHERE a.job_id = %s AND j.lease_id = %s AND j.status = %s AND w.key_id = %s AND w.client_id = %s",
        [job_id, lease_id, Status.LEASED, key.pk, client_id],
    )
    worker = _instance(Worker, columns[:-2], row) if row is not None else None
    if worker is None or not worker.is_registered:
        # Say why, without telling a stranger anything.
        worker = worker_for_request(key=key, client_id=client_id)
        _held_job(worker=worker, job_id=job_id, lease_id=lease_id)
        raise LeaseLost("This job has already ended.")
    _seen(worker, key)
    return JobAudio(job_id=job_id, data=row[-2], content_type=row[-1])


def job_complete(*, worker: Worker, job_id: str, lease_id: str, text: str, segments: list, model: str,
                 processing_seconds: float | None = None) -> tuple[Job, float]:
    """Store the result and settle credits. Repeating the same call is harmless.

    Returns the job and the seconds credited to the worker's owner.
    """
    model = model or worker.model
    finish = (f"UPDATE {JOB_TABLE} SET status = %s, text = %s, segments = %s, model = %s,"
              f" finished_at = %s, lease_expires_at = NULL"
              f" WHERE id = %s AND worker_id = %s AND lease_id = %s AND lease_id <> '' AND status = %s"
              f" RETURNING {JOB_COLUMNS}")
    now = _dt(timezone.now())
    params = [Status.COMPLETED, text, Job._meta.get_field("segments").get_db_prep_save(segments, connection),
              model, now, job_id, worker.id, lease_id, Status.LEASED]
    processing_seconds = float(processing_seconds or 0)
    with transaction.atomic():
        # The usual case: the job moves only if this worker holds it with this lease.
        if connection.vendor == "postgresql":
            # With its attempt, its audio and the worker's figures, in one statement.
            job = _load(Job, f"WITH done AS ({finish}),"
                             f" attempt AS ({END_ATTEMPT} AND EXISTS (SELECT 1 FROM done)),"
                             f" audio AS (DELETE FROM {AUDIO_TABLE} WHERE job_id IN (SELECT id FROM done)),"
                             f" counted AS (UPDATE {WORKER_TABLE} SET jobs_done = jobs_done + 1,"
                             f" audio_seconds = {WORKER_TABLE}.audio_seconds + done.duration_seconds,"
                             f" processing_seconds = {WORKER_TABLE}.processing_seconds + %s"
                             f" FROM done WHERE {WORKER_TABLE}.id = %s)"
                             f" SELECT {JOB_COLUMNS} FROM done",
                        [*params, JobAttempt.Outcome.COMPLETED, now, "", lease_id, JobAttempt.Outcome.RUNNING,
                         processing_seconds, worker.pk])
        else:
            job = _load(Job, finish, params)
            if job is not None:
                _end_attempt(job, JobAttempt.Outcome.COMPLETED, "")
                _execute(f"DELETE FROM {AUDIO_TABLE} WHERE job_id = %s", [job.id])
                _execute(f"UPDATE {WORKER_TABLE} SET jobs_done = jobs_done + 1, audio_seconds = audio_seconds + %s,"
                         f" processing_seconds = processing_seconds + %s WHERE id = %s",
                         [float(job.duration_seconds), processing_seconds, worker.pk])
        if job is None:
            # A repeated call, or one that may not: say which.
            job = _held_job(worker=worker, job_id=job_id, lease_id=lease_id, lock=True)
            if job.status != Status.COMPLETED:
                raise LeaseLost("This job has already ended.")
            return job, _credited(job, worker)
        if job.route == Route.POOL_CREDIT:
            credits.credits_settle(job_ref=job.id)
        if _credited(job, worker):
            credits.credits_earn(key=worker.key, amount=job.duration_seconds, job_ref=job.id)
        wakeup.announce(f"done:{job.id}")
    return job, _credited(job, worker)


def _credited(job: Job, worker: Worker) -> float:
    """Seconds the worker's owner earns for this job: others' audio only, and never the demo worker."""
    earns = job.key_id != worker.key_id and not worker.key.is_server
    return float(job.duration_seconds) if earns else 0.0


def job_fail(*, worker: Worker, job_id: str, lease_id: str, error: str) -> Job:
    """The worker gave up on the job: retry it elsewhere, or fail it for good."""
    with transaction.atomic():
        repeated = JobAttempt.objects.filter(
            job_id=job_id, worker=worker, lease_id=lease_id, outcome=JobAttempt.Outcome.FAILED
        ).exists()
        if repeated and lease_id:
            return Job.objects.get(pk=job_id)
        job = _held_job(worker=worker, job_id=job_id, lease_id=lease_id, lock=True)
        if job.status != Status.LEASED:
            raise LeaseLost("This job has already ended.")
        _end_attempt(job, JobAttempt.Outcome.FAILED, error)
        Job.objects.filter(pk=job.pk).update(failures=F("failures") + 1)
        Worker.objects.filter(pk=worker.pk).update(jobs_failed=F("jobs_failed") + 1)
        job.refresh_from_db()
        _retry_or_fail(job, f"worker reported: {error}"[:500])
    return job


def _end_attempt(job: Job, outcome, error: str):
    _execute(END_ATTEMPT, [outcome, _dt(timezone.now()), error[:500], job.lease_id, JobAttempt.Outcome.RUNNING])


def _requeue(job: Job):
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED, worker=None, lease_id="", lease_expires_at=None)
    job.status = Status.QUEUED
    wakeup.announce(_queue_channel(job))


def _retry_or_fail(job: Job, error: str):
    if job.attempts >= settings.JPT_MAX_ATTEMPTS:
        job_finish_failed(job, f"Transcription failed after {job.attempts} attempts ({error}).")
    else:
        _requeue(job)


def job_finish_failed(job: Job, error: str, *, status=Status.FAILED, code="internal_error"):
    """End a job without a result, giving back everything it held. Call in a transaction."""
    Job.objects.filter(pk=job.pk).update(status=status, error=error[:500], error_code=code,
                                         finished_at=timezone.now(), worker=None, lease_expires_at=None)
    job.status = status
    job.error = error[:500]
    job.error_code = code
    JobAudio.objects.filter(job=job).delete()
    credits.credits_refund(job_ref=job.id, reason=error[:300])
    if job.route == Route.SERVER_DEMO and job.demo_day and job.client_ip:
        quotas.quota_give_back(scope=quotas.DEMOS, subject=job.client_ip, day=job.demo_day)
    wakeup.announce(f"done:{job.id}")


def job_cancel(*, job: Job, reason: str):
    """Operator's cancel: the caller is told, reserved credits and demos go back."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return job
        if job.status == Status.LEASED:
            _end_attempt(job, JobAttempt.Outcome.ABANDONED, "cancelled")
        job_finish_failed(job, f"Cancelled by an operator: {reason}", status=Status.CANCELLED)
    return job


def job_requeue(*, job: Job):
    """Operator's re-queue of a stuck or held job."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status == Status.LEASED:
            _end_attempt(job, JobAttempt.Outcome.ABANDONED, "re-queued by an operator")
            _requeue(job)
    return job


# --- Lease expiry ---------------------------------------------------------------------


def jobs_expire_leases() -> int:
    """Put jobs whose worker went silent back in the queue (or fail them after the last attempt)."""
    now = timezone.now()
    expired = 0
    ids = list(Job.objects.filter(status=Status.LEASED, lease_expires_at__lt=now).values_list("pk", flat=True)[:100])
    for job_id in ids:
        with transaction.atomic():
            job = Job.objects.select_for_update(skip_locked=True).filter(
                pk=job_id, status=Status.LEASED, lease_expires_at__lt=now
            ).first()
            if job is None:
                continue
            _end_attempt(job, JobAttempt.Outcome.EXPIRED, "lease expired")
            _retry_or_fail(job, "the worker went silent")
            expired += 1
    if expired:
        log.info("re-queued %d jobs whose lease expired", expired)
    return expired


def jobs_expire_queued() -> int:
    """Fail jobs no worker took in time, so their callers hear back and their credits return."""
    limit = settings.JPT_QUEUE_TIMEOUT_SECONDS
    cutoff = timezone.now() - timedelta(seconds=limit)
    expired = 0
    ids = list(Job.objects.filter(status=Status.QUEUED, queued_at__lt=cutoff).values_list("pk", flat=True)[:100])
    for job_id in ids:
        with transaction.atomic():
            job = Job.objects.select_for_update(skip_locked=True).filter(pk=job_id, status=Status.QUEUED).first()
            if job is not None:
                job_finish_failed(job, f"No worker took this job within {limit / 60:g} minutes; please retry.")
                expired += 1
    return expired


_last_maintenance = 0.0


def pool_maintenance():
    """Expire leases and stale queued jobs, at most once an interval across all processes.

    The shared cache holds the turn; the process-local clock only spares asking it
    on every request."""
    global _last_maintenance
    interval = settings.JPT_MAINTENANCE_INTERVAL_SECONDS
    if time.monotonic() - _last_maintenance < interval:
        return
    _last_maintenance = time.monotonic()
    if cache.add("jpt:pool-maintenance", 1, timeout=interval):
        jobs_expire_leases()
        jobs_expire_queued()


# --- Figures ------------------------------------------------------------------------------


def pool_stats() -> dict:
    return {
        "workers_online": Worker.objects.online().filter(key__is_server=False).count(),
        "jobs_queued": Job.objects.filter(status=Status.QUEUED).count(),
    }


def job_reroute(*, job: Job, route: str, route_reason: str, demo_day=None):
    """Move a queued job to another route (its owner's worker vanished). Call in a transaction."""
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(route=route, route_reason=route_reason,
                                                               demo_day=demo_day)
    job.route = route
    wakeup.announce(_queue_channel(job))

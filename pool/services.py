"""The job pool's operations: workers checking in, jobs submitted, claimed, completed or failed,
and the operators' actions on them. The SQL is in `pool.statements`, the rules in `pool.policy`."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts import credits
from accounts.models import ApiKey
from jptranscribe import places, waiting
from jptranscribe.errors import InvalidRequest, NotFound, RateLimited
from jptranscribe.sql import Answer, db_datetime, db_value, instance, load, retried_on_conflict, row_params, run
from jptranscribe.waiting import Steps, Wait
from pool import leases, policy, verification, wakeup
from pool import statements as sql
from pool.leases import CANCELLED_CODE, LeaseLost, job_finish_failed
from pool.models import Job, JobAttempt, JobAudio, JobResult, KeyTrust, Worker, new_lease_id
from pool.workers import WorkerBusy, key_places, refuse_banned, worker_for_request, worker_seen

Status = Job.Status
Route = Job.Route


@dataclass
class Heartbeat:
    """A worker after its heartbeat, and which of the leases it named it still holds."""

    worker: Worker
    renewed: list[str]
    lost: list[str]


# --- Workers --------------------------------------------------------------------------------------


def worker_heartbeat(
    *,
    key: ApiKey,
    client_id: str,
    name: str = "",
    engine: str = "",
    model: str = "",
    version: str = "",
    going_offline: bool = False,
    session_id: str | None = None,
    holding: Collection[str] = (),
    max_jobs: int = 1,
) -> Heartbeat:
    """Register or refresh a worker and renew the leases it says it still holds.

    A lease it does not name is not renewed (it runs out unless the worker finishes first); a
    new `session_id` means a new process, so whatever the old one held goes back to the queue
    now; a worker that says goodbye leaves nothing waiting for a lease. `session_id=None` (the
    server's own pre-registration) leaves the session as it is.
    """
    refuse_banned(key)
    now = timezone.now()
    fields: dict[str, object] = {
        "name": name,
        "engine": engine,
        "model": model,
        "version": version,
        "max_jobs": policy.declared_max_jobs(max_jobs),
        "last_seen_at": now,
        "signed_off_at": now if going_offline else None,
        "expires_at": now if going_offline else policy.registration_expires_at(now),
    }
    if session_id is not None and not going_offline:
        same_session = _heartbeat_same_session(key=key, client_id=client_id, session_id=session_id, fields=fields)
        if same_session is not None:
            renewed = leases.renew(same_session, holding, now)
            return Heartbeat(same_session, renewed=renewed, lost=[lease for lease in holding if lease not in renewed])
    if session_id is not None:
        fields["session_id"] = session_id
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(key=key, client_id=client_id).first()
        restarted = worker is not None and session_id is not None and worker.session_id != session_id
        if worker is None:  # new (or made by a racing first heartbeat an instant ago)
            worker, _ = Worker.objects.update_or_create(key=key, client_id=client_id, defaults=fields)
        else:
            for name, value in fields.items():
                setattr(worker, name, value)
            worker.save(update_fields=list(fields))
        worker.key = key  # its answer reads the key (banned?): no second look-up
        if going_offline:
            leases.requeue_held_jobs(worker, reason="worker went offline")
            return Heartbeat(worker, renewed=[], lost=list(holding))
        if restarted:
            leases.take_back_held_jobs(worker, reason="the worker restarted without finishing it")
        renewed = leases.renew(worker, holding, now)
    return Heartbeat(worker, renewed=renewed, lost=[lease for lease in holding if lease not in renewed])


def _heartbeat_same_session(
    *, key: ApiKey, client_id: str, session_id: str, fields: Mapping[str, Any]
) -> Worker | None:
    """The usual heartbeat, the same worker process again and online, in one statement and no
    transaction: it has nothing to take back. None for a new worker or a new session (a restart),
    which the transaction in `worker_heartbeat` handles."""
    params = {name: fields[name] for name in ("name", "engine", "model", "version", "max_jobs")}
    answer = run(
        sql.HEARTBEAT,
        {
            **params,
            "now": db_datetime(fields["last_seen_at"]),
            "expires_at": db_datetime(fields["expires_at"]),
            "key_id": key.pk,
            "client_id": client_id,
            "session_id": session_id,
        },
    )
    if answer.row is None:
        return None
    worker = instance(Worker, answer.columns, answer.row)
    worker.key = key  # its answer reads the key (banned?): no second look-up
    return worker


def worker_ban(*, key: ApiKey) -> None:
    """Stop a key's workers: they can no longer claim, and the jobs they hold go back to the queue."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(workers_banned_at=timezone.now())
        for worker in Worker.objects.filter(key=key):
            leases.requeue_held_jobs(worker, reason="worker banned")
    key.forget_cached()


# --- Submitting -----------------------------------------------------------------------------------


def job_submit(
    *,
    key: ApiKey,
    route: str,
    route_reason: str,
    audio: bytes,
    content_type: str,
    audio_format: str,
    duration_seconds: float,
    translate: bool,
    voiced_seconds: float = 0.0,
    client_ip: str | None = None,
    demo_day: date | None = None,
    job_id: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Job:
    """Queue a routed clip with its audio. Called inside the routing transaction, so the credit
    hold, the demo quota and the job stand or fall together. `options` are the caller's
    transcription options (`policy.job_options`), handed to the worker with the job."""
    job = Job(
        key=key,
        route=route,
        route_reason=route_reason,
        audio_format=audio_format,
        duration_seconds=duration_seconds,
        voiced_seconds=voiced_seconds,
        translate=translate,
        options=policy.job_options(options),
        client_ip=client_ip,
        demo_day=demo_day,
    )
    if job_id:
        job.id = job_id
    stored = load(Job, sql.SUBMIT, {**row_params(job), "audio": audio, "content_type": content_type})
    assert stored is not None
    stored.key = key
    wakeup.announce(wakeup.job_queued_channel(stored))
    return stored


# --- Claiming -------------------------------------------------------------------------------------


def job_claim(*, worker: Worker, wait_seconds: float, inline_audio_up_to: int = 0) -> Job | None:
    """Hand the worker one job, waiting up to `wait_seconds` for one to arrive (in this thread:
    see `job_claim_steps`)."""
    return waiting.run_in_thread(
        job_claim_steps(worker=worker, wait_seconds=wait_seconds, inline_audio_up_to=inline_audio_up_to)
    )


def job_claim_steps(
    *,
    worker: Worker,
    wait_seconds: float,
    inline_audio_up_to: int = 0,
    queued_seconds: float = 0.0,
    refuse: bool = True,
) -> Steps[Job | None]:
    """Hand the worker one job, waiting up to `wait_seconds` for one to arrive.

    The job's `inline_audio` is its audio when that is at most `inline_audio_up_to` bytes
    (else None), so a small clip needs no request of its own. It waits (as `jptranscribe.waiting`
    steps: on the event loop under the ASGI server, holding no thread and no database connection)
    until a wake-up for a queue this worker takes from. A key may have only as many claims
    waiting as its online workers run jobs at once; a claim that finds a job at once waits for
    nothing and takes no place (nor the two cache round trips). `queued_seconds`, how long the
    request waited for a thread, spreads out the waits of a burst (`policy.claim_wait_seconds`).
    With `refuse` False (a completion's claim of the next job) a worker that may not claim, or
    finds no place to wait, gets None instead of a refusal.
    """
    if worker.held_jobs is not None and worker.held_jobs >= worker.max_jobs:
        if not refuse:
            return None
        raise WorkerBusy(
            f"This worker holds {worker.held_jobs} job(s), as many as it runs at once (max_jobs in its "
            "heartbeat): complete or fail one first."
        )
    wait_seconds = policy.claim_wait_seconds(wait_seconds, queued=queued_seconds)
    if not wait_seconds:
        leases.pool_maintenance()
        return claim_once(worker, inline_audio_up_to)
    deadline = time.monotonic() + wait_seconds
    channels = wakeup.claim_channels(key_id=worker.key_id, is_server=worker.key.is_server)
    placed = False
    with ExitStack() as place:
        while True:
            with wakeup.hub.listening(channels) as woken:
                leases.pool_maintenance()
                job = claim_once(worker, inline_audio_up_to)
                if job is not None:
                    return job
                remaining = deadline - time.monotonic()
                if remaining <= 0 or wakeup.hub.closing:
                    return None
                if not placed:  # about to wait for the first time
                    limit = _place_to_wait(worker, place)
                    if limit is not None:
                        if not refuse:
                            return None
                        raise RateLimited(
                            f"This key already has as many claims waiting as its online workers run jobs at once "
                            f"({limit}; at most {settings.JPT_CLAIMS_WAITING_PER_KEY}). Wait for one to answer "
                            "before claiming again.",
                            retry_after=int(wait_seconds) or 1,
                        )
                    placed = True
                # Until a job is announced (or the hub's safety net wakes this claim), or the deadline.
                if not (yield Wait(woken, remaining)) and time.monotonic() >= deadline:
                    # The deadline, and nothing announced meanwhile: no job, without another look.
                    return None


def job_claim_next_steps(
    *, worker: Worker, wait_seconds: float = 0.0, inline_audio_up_to: int = 0, queued_seconds: float = 0.0
) -> Steps[Job | None]:
    """The next job for a worker that has just handed one in: one waiting now, or with
    `wait_seconds` the first to arrive within them (a claim's long-poll, folded into the
    completion: an idle worker's next claim is one request fewer); else None.

    It never refuses: a worker with all its places taken, or no place left to wait, gets None
    and claims as usual (where a refusal is explained). The completion is already stored."""
    if worker.held_jobs:
        worker.held_jobs -= 1  # the one just handed in: its place is tried first
    return (
        yield from job_claim_steps(
            worker=worker,
            wait_seconds=wait_seconds,
            inline_audio_up_to=inline_audio_up_to,
            queued_seconds=queued_seconds,
            refuse=False,
        )
    )


def _place_to_wait(worker: Worker, place: ExitStack) -> int | None:
    """A place among the key's waiting claims, held until `place` closes: None once taken, else
    the key's limit, all of it taken.

    The key's places were counted when the claim began. Before giving up they are counted again:
    workers of the key that registered since (several started at once) may be among those waiting,
    and a claim counted short would be refused its own place."""
    name = f"claims:{worker.key_id}"
    limit = _claims_waiting_limit(worker.key_places)
    if place.enter_context(places.places((name, limit))):
        return None
    fresh = _claims_waiting_limit(key_places(worker.key_id))
    if fresh > limit:
        place.close()  # gives the place back, to take it again under the new count
        limit = fresh
        if place.enter_context(places.places((name, limit))):
            return None
    return limit


def _claims_waiting_limit(places_of_key: int | None) -> int:
    return min(settings.JPT_CLAIMS_WAITING_PER_KEY, max(1, places_of_key or 0))


def claim_once(worker: Worker, inline_audio_up_to: int = 0) -> Job | None:
    """Lease the best queued job for this worker now, with its attempt row (and audio), or None."""
    now = timezone.now()
    statement = sql.CLAIM_DEMO if worker.key.is_server else sql.CLAIM_POOL
    params = {
        "worker_pk": worker.pk,
        "worker_key_id": worker.key_id,
        "lease_id": new_lease_id(),
        "lease_expires_at": db_datetime(policy.lease_expires_at(now)),
        "lease_hard_expires_at": db_datetime(policy.lease_hard_expires_at(now)),
        "now": db_datetime(now),
        "inline_audio_up_to": inline_audio_up_to,
        "checks_open_before": db_datetime(now - timedelta(seconds=settings.JPT_CHECKS_OPEN_SECONDS)),
    }
    answer = None
    for slot in policy.slots_to_try(held=worker.held_jobs or 0, max_jobs=worker.max_jobs):
        try:
            # Inside a caller's transaction (tests, operators' tools) a refusal must not end it.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                answer = run(statement, {**params, "slot": slot})
            break
        except IntegrityError:
            continue  # the place is taken (another claim of this worker, an instant before)
    if answer is None:  # every place taken: the worker holds all it runs at once
        return None
    if answer.row is None:
        return None
    job = instance(Job, answer.columns, answer.row)
    audio = answer.value("inline_audio")
    job.inline_audio = bytes(audio) if audio is not None else None
    if job.route == Route.POOL_CREDIT:
        verification.job_claimed(job, worker, _trust_read(worker, answer))
    return job


def _trust_read(worker: Worker, answer: Answer) -> KeyTrust:
    """The worker key's record, as the claim or completion statement read it."""
    return verification.trust_seen(
        worker.key_id,
        consecutive_agreements=answer.value("trust_consecutive"),
        quarantined=bool(answer.value("trust_quarantined")),
    )


# --- Holding a job --------------------------------------------------------------------------------


def _held_job(*, worker: Worker, job_id: str, lease_id: str, lock: bool = False) -> Job:
    """The job, if this worker holds it with this lease (or finished it with it).

    A stranger learns nothing: a job it never held is simply not found.
    """
    job = load(Job, sql.JOB_BY_ID_LOCKED if lock else sql.JOB_BY_ID, {"job_id": job_id})
    if job is None:
        raise NotFound("No such job.")
    if job.worker_id == worker.pk and job.lease_id == lease_id and lease_id:
        return job
    if JobAttempt.objects.filter(job_id=job_id, worker=worker).exists():
        if job.status == Status.CANCELLED:
            raise LeaseLost("This job was cancelled (by its owner or an operator): drop it and take the next one.")
        raise LeaseLost("This job is no longer yours: its lease expired or it was re-assigned.")
    raise NotFound("No such job.")


def job_reload(job: Job) -> Job:
    """The job's row read again, keeping the key object it already has."""
    fresh = load(Job, sql.JOB_BY_ID, {"job_id": job.pk})
    if fresh is None:
        raise Job.DoesNotExist(f"No job {job.pk}.")
    fresh.key = job.key
    return fresh


def job_audio(*, key: ApiKey, client_id: str, job_id: str, lease_id: str) -> JobAudio:
    """The audio of a job the caller's worker holds: one query finds the worker through the job,
    and only when that finds nothing does the long way round say why."""
    refuse_banned(key)
    answer = run(sql.HELD_AUDIO, {"job_id": job_id, "lease_id": lease_id, "key_id": key.pk, "client_id": client_id})
    worker = instance(Worker, answer.columns, answer.row) if answer.row is not None else None
    if worker is None or not worker.is_registered:
        # Say why, without telling a stranger anything.
        _held_job(worker=worker_for_request(key=key, client_id=client_id), job_id=job_id, lease_id=lease_id)
        raise LeaseLost("This job has already ended.")
    worker_seen(worker, key)
    JobAttempt.objects.filter(lease_id=lease_id, audio_fetched=False).update(audio_fetched=True)
    return JobAudio(job_id=job_id, data=answer.value("data"), content_type=answer.value("content_type"))


# --- Ending a job ---------------------------------------------------------------------------------


def job_complete(
    *,
    worker: Worker,
    job_id: str,
    lease_id: str,
    text: str,
    segments: list[dict[str, Any]],
    model: str,
    processing_seconds: float | None = None,
    warnings: Sequence[str] = (),
) -> tuple[Job, float]:
    """Store the result and settle credits. Repeating the same call is harmless.

    A text longer than the clip can hold is refused (the job stays with the worker), and so are
    segments whose texts, or whose words, taken together hold more; segment and word times are kept inside the clip. The engine's
    `warnings` (what it did not do of what the caller asked) join the job's warnings. Returns the
    job and the seconds credited to the worker's owner.
    """
    segments_chars = policy.segments_chars(segments)
    try:
        return retried_on_conflict(
            lambda: _complete(
                worker=worker,
                job_id=job_id,
                lease_id=lease_id,
                text=text,
                segments=segments,
                model=model,
                processing_seconds=processing_seconds,
                warnings=warnings,
                segments_chars=segments_chars,
            )
        )
    except ResultTooLong as refused:  # no transcript of this clip: a strike when a stranger's worker sent it
        if refused.job.route in verification.CHECKED_ROUTES:
            with transaction.atomic():
                verification.strike(key_id=worker.key_id, job=refused.job, reason=f"too long a result: {refused}")
        raise


def _complete(
    *,
    worker: Worker,
    job_id: str,
    lease_id: str,
    text: str,
    segments: list[dict[str, Any]],
    model: str,
    processing_seconds: float | None,
    warnings: Sequence[str],
    segments_chars: int,
) -> tuple[Job, float]:
    with transaction.atomic():
        params = {
            "job_id": job_id,
            "worker_pk": worker.pk,
            "worker_key_id": worker.key_id,
            "lease_id": lease_id,
            "text": text,
            "segments": db_value(Job, "segments", segments),
            "model": model or worker.model,
            "now": db_datetime(timezone.now()),
            "outcome": JobAttempt.Outcome.COMPLETED,
            "error": "",
            "processing_seconds": float(processing_seconds or 0),
            "chars_per_second": policy.RESULT_CHARS_PER_SECOND,
            "chars_base": policy.RESULT_CHARS_BASE,
            "segments_chars": segments_chars,
        }
        answer = run(sql.COMPLETE, params)
        if answer.row is None and _lease_back_after_silence(worker=worker, job_id=job_id, lease_id=lease_id):
            answer = run(sql.COMPLETE, params)
        job = instance(Job, answer.columns, answer.row) if answer.row is not None else None
        if job is None:
            # A repeated call, a text too long for the clip, or a call that may not: say which.
            job = _held_job(worker=worker, job_id=job_id, lease_id=lease_id, lock=True)
            if job.status == Status.LEASED:
                _refuse_too_long(job, text=text, segments=segments)
            if job.status not in (Status.COMPLETED, Status.CHECKING):
                raise LeaseLost("This job has already ended.")
            return job, _credited(job, worker)
        changed: dict[str, Any] = {}
        inside = policy.segments_within(job.segments, job.duration_seconds)
        if inside != job.segments:  # rare: an engine's last segment running past the end
            changed["segments"] = job.segments = inside
        if warnings:  # rare: the engine could not do all the caller asked
            changed["warnings"] = job.warnings = [
                *job.warnings,
                *({"code": "engine_warning", "message": message} for message in warnings),
            ]
        if changed:
            Job.objects.filter(pk=job.pk).update(**changed)
        if job.route in verification.CHECKED_ROUTES:  # a stranger's result: checked before it counts
            started_at = answer.value("attempt_started_at")
            attempt = (
                None
                if started_at is None
                else instance(
                    JobAttempt,
                    ("started_at", "audio_inline", "audio_fetched"),
                    (started_at, answer.value("audio_inline"), answer.value("audio_fetched")),
                )
            )
            received = verification.result_in(job, worker, attempt=attempt, trust=_trust_read(worker, answer))
            earned = received.earned
        else:
            earned = _credited(job, worker)
            if earned:  # not reached today: own and demo jobs earn nothing
                credits.credits_earn_pending(key_id=worker.key_id, amount=job.duration_seconds, job_ref=job.id)
            wakeup.announce(wakeup.job_done_channel(job.id))
    return job, earned


def _lease_back_after_silence(*, worker: Worker, job_id: str, lease_id: str) -> bool:
    """A result for a lease that ran out while the server could not hear its worker (the server was
    down past the lease, or the network was): the job is the worker's again under that lease when it
    still waits in the queue and nobody took it since, so the finished transcript is not thrown away
    (and the clip not run again). Not after the lease's hard limit, nor once a new session of the
    worker took its jobs back. In the completion's transaction; whether the job is held again."""
    if not lease_id:
        return False
    ran_out = JobAttempt.objects.filter(
        job_id=job_id, worker=worker, lease_id=lease_id, outcome=JobAttempt.Outcome.EXPIRED, error=leases.WENT_SILENT
    ).first()
    if ran_out is None or JobAttempt.objects.filter(job_id=job_id, started_at__gt=ran_out.started_at).exists():
        return False
    # Held for the moment of its completion only: no slot of the worker's (it may hold others now).
    held = Job.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.LEASED,
        worker=worker,
        worker_slot=None,
        lease_id=lease_id,
        lease_expires_at=policy.lease_expires_at(timezone.now()),
    )
    if held:
        JobAttempt.objects.filter(pk=ran_out.pk).update(outcome=JobAttempt.Outcome.RUNNING, ended_at=None, error="")
    return bool(held)


class ResultTooLong(InvalidRequest):
    def __init__(self, message: str, *, job: Job, param: str) -> None:
        super().__init__(message, param=param)
        self.job = job


def _refuse_too_long(job: Job, *, text: str, segments: list[dict[str, Any]]) -> None:
    """A leased job's result that the clip cannot hold is refused, saying what was too long."""
    most = policy.max_result_chars(job.duration_seconds)
    for what, chars, param in (
        ("text has", len(text), "text"),
        ("segments' texts hold", policy.segment_texts_chars(segments), "segments"),
        ("segments' words hold", policy.words_chars(segments), "segments"),
    ):
        if chars > most:
            raise ResultTooLong(
                f"The {what} {chars:,} characters; a {float(job.duration_seconds):g} s clip holds at most "
                f"{most:,}. Send the transcript of this clip only.",
                job=job,
                param=param,
            )


def _credited(job: Job, worker: Worker) -> float:
    return policy.credited_seconds(
        duration=job.duration_seconds,
        owner_key_id=job.key_id,
        worker_key_id=worker.key_id,
        worker_is_server=worker.key.is_server,
    )


def job_fail(*, worker: Worker, job_id: str, lease_id: str, error: str) -> Job:
    """The worker gave up on the job: retry it elsewhere, or fail it for good.

    Repeating it is harmless: while the job is still queued or failed, as a fail leaves it, the
    repeat answers as the first did. Once the job has moved on (another worker holds it, or it
    ended otherwise) the lease is gone, and the repeat is `lease_lost` like any other call on it.
    """
    with transaction.atomic():
        repeated = JobAttempt.objects.filter(
            job_id=job_id, worker=worker, lease_id=lease_id, outcome=JobAttempt.Outcome.FAILED
        ).exists()
        if repeated and lease_id:
            job = Job.objects.get(pk=job_id)
            if job.status not in (Status.QUEUED, Status.FAILED):
                raise LeaseLost("This job is no longer yours: you failed it, and it has moved on since.")
            return job
        job = _held_job(worker=worker, job_id=job_id, lease_id=lease_id, lock=True)
        if job.status != Status.LEASED:
            raise LeaseLost("This job has already ended.")
        leases.end_attempt(job, JobAttempt.Outcome.FAILED, error)
        Job.objects.filter(pk=job.pk).update(failures=F("failures") + 1)
        Worker.objects.filter(pk=worker.pk).update(jobs_failed=F("jobs_failed") + 1)
        job.refresh_from_db()
        leases.retry_or_fail(job, f"worker reported: {error}")
    return job


# --- Operators and routing ------------------------------------------------------------------------


CANCELLED_BY_OPERATOR = "Cancelled by an operator."


def job_cancel(*, job: Job, message: str) -> Job | None:
    """End a queued or held job without a result, its caller told `message` (under the error
    code `cancelled`): the credits held for it are refunded and its demo given back, and the worker
    that holds it, if any, loses its lease (its heartbeats list the lease as lost, its completion
    answers `lease_lost`, and it earns nothing). Returns the cancelled job, or None when it had already ended."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return None
        if job.status == Status.LEASED:
            leases.end_attempt(job, JobAttempt.Outcome.ABANDONED, "cancelled")
        job_finish_failed(job, message, status=Status.CANCELLED, code=CANCELLED_CODE)
        verification.job_cancelled(job.pk)
    return job


def jobs_erase(jobs: QuerySet[Job]) -> int:
    """Clear what these jobs hold of their callers' words: the text, segments, translation,
    warnings and transcription options (the prompt is the caller's text), and any audio left.
    Only finished jobs not yet erased are touched, in one UPDATE; the rest of the row (key,
    route, duration, status, times, model, error) stays for billing and the ledger. Returns
    how many were erased.

    `transcription.services.transcriptions_erase` is the entry point: it also clears what the
    apps above the pool keep of a transcription."""
    finished = jobs.filter(status__in=Job.FINISHED, erased_at__isnull=True)
    with transaction.atomic():
        # Its checks hold the same words: workers' transcripts, and copies of the clip still running.
        ids = list(finished.values_list("pk", flat=True))
        verification.checks_cancel(ids, why="erased")
        JobResult.objects.filter(job_id__in=ids).update(text="", segments=[])
        copies = Job.objects.filter(checks_id__in=ids)
        JobAudio.objects.filter(job__in=copies.values("pk")).delete()
        copies.update(text="", segments=[], options={}, erased_at=timezone.now())
        JobAudio.objects.filter(job_id__in=ids).delete()
        return Job.objects.filter(pk__in=ids).update(
            text="", segments=[], translation=None, warnings=[], options={}, erased_at=timezone.now()
        )


def job_requeue(*, job: Job) -> Job | None:
    """Operator's re-queue of a held job: its worker loses the lease and the job goes back to the
    queue. Returns the re-queued job, or None when no worker held it (queued, being checked or
    ended), which is left as it was."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status != Status.LEASED:
            return None
        leases.end_attempt(job, JobAttempt.Outcome.ABANDONED, "re-queued by an operator")
        leases.requeue(job)
    return job


def job_reroute(*, job: Job, route: str, route_reason: str, demo_day: date | None = None) -> None:
    """Move a queued job to another route (its owner's worker vanished). Call in a transaction."""
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        route=route, route_reason=route_reason, demo_day=demo_day
    )
    job.route = route
    wakeup.announce(wakeup.job_queued_channel(job))

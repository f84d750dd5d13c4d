"""Waiting for a transcription, reading it, and translating its result (rendered by transcription.serializers)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from accounts import idempotency
from jptranscribe import places, waiting
from jptranscribe.errors import OUTAGES, NotFound
from jptranscribe.net import address_block
from jptranscribe.waiting import Steps, Wait, Waiter
from pool import leases, wakeup
from pool import services as pool
from pool.models import Job, new_job_id
from transcription.routing import reroute_if_stranded, transcription_submit
from transcription.webhooks import WebhookRequest, webhooks_forget_bodies, with_webhook_state

if TYPE_CHECKING:
    from accounts.idempotency import IdempotentCall
    from accounts.models import ApiKey, IdempotentRequest
    from transcription.intake import CheckedAudio

log = logging.getLogger(__name__)


def transcription_submit_and_wait(**kwargs: Any) -> Job:
    """`transcription_submit_and_wait_steps`, waiting in this thread."""
    return waiting.run_in_thread(transcription_submit_and_wait_steps(**kwargs))


def transcription_submit_and_wait_steps(
    *,
    key: ApiKey,
    audio: CheckedAudio,
    translate: bool,
    ip: str,
    timeout: float,
    options: dict | None = None,
    job_id: str | None = None,
    webhook: WebhookRequest | None = None,
) -> Steps[Job]:
    """Route and queue a clip, then wait for it to end (or `timeout` to pass).

    A key and an address (web visitors share one key: theirs is by address only) have only so
    many calls waiting at once; beyond them the job is queued all the same and the call answers
    at once, as when the wait runs out. The wake-up is registered before the job exists, so
    nothing can finish it unseen and the fresh job needs no first look in the database.
    `options` go to the worker with the job (`transcription_submit`).
    """
    job_id = job_id or new_job_id()
    with _places_to_wait(key, ip) as may_wait, wakeup.hub.listening([wakeup.job_done_channel(job_id)]) as done:
        job = transcription_submit(
            key=key, audio=audio, translate=translate, ip=ip, job_id=job_id, options=options, webhook=webhook
        )
        return (yield from _wait(job, done, timeout if may_wait else 0))


# How long a retry waits for the first request's job to exist (that request is still reading,
# fetching or checking the audio) before it is told to retry (409).
FIRST_JOB_WAIT_SECONDS = 5.0


def transcription_submit_once(
    *,
    call: IdempotentCall | None,
    key: ApiKey,
    ip: str,
    read_audio: Callable[[], CheckedAudio],
    translate: bool,
    options: dict | None,
    timeout: float | None,
    webhook: WebhookRequest | None = None,
) -> Steps[tuple[Job, bool]]:
    """Read, route and queue a clip once per Idempotency-Key (`call`), then wait up to `timeout`
    (None: answer at once, `Prefer: respond-async`). Returns the job and whether it is an earlier
    request's.

    A retry of the same request attaches to the first one's job: it waits for it as the first
    call did (or looks at it, for an asynchronous retry), queues nothing, holds no credits, takes
    no demo. The job's id is chosen before the record, so the record names it before the job
    exists. If the first request is refused before its job exists (bad audio, 403, 429…), it gives
    the key back and a retry runs anew."""

    def submit(job_id: str) -> Steps[Job]:
        audio = read_audio()
        if timeout is None:
            return transcription_submit(
                key=key, audio=audio, translate=translate, ip=ip, job_id=job_id, options=options, webhook=webhook
            )
        return (
            yield from transcription_submit_and_wait_steps(
                key=key,
                audio=audio,
                translate=translate,
                ip=ip,
                timeout=timeout,
                options=options,
                job_id=job_id,
                webhook=webhook,
            )
        )

    if call is None:
        return (yield from submit(new_job_id())), False
    for _ in range(3):
        job_id = new_job_id()
        earlier = idempotency.claim(call, job_ref=job_id)
        if earlier is None:
            try:
                return (yield from submit(job_id)), False
            except BaseException:
                if not Job.objects.filter(pk=job_id).exists():  # refused before it queued anything
                    idempotency.release(call, job_ref=job_id)
                raise
        first = _first_job(earlier, key=key)
        if first is not None:
            return (yield from transcription_attach(job=first, key=key, ip=ip, timeout=timeout)), True
    raise idempotency.still_running()


def _first_job(earlier: IdempotentRequest, *, key: ApiKey) -> Job | None:
    """The earlier request's job, once it exists. None: its record is gone (it was refused, or
    died long ago and is taken over): claim again. 409 if it does not appear in time."""
    if not earlier.job_ref:  # a stored answer: another endpoint's, which the fingerprint rules out
        raise idempotency.still_running()
    deadline = time.monotonic() + FIRST_JOB_WAIT_SECONDS
    while True:
        job = Job.objects.select_related("key").filter(pk=earlier.job_ref, key=key).first()
        if job is not None:
            return job
        if idempotency.is_abandoned(earlier):
            idempotency.take_over(earlier)
            return None
        if not idempotency.is_recorded(earlier):
            return None
        if time.monotonic() >= deadline:
            raise idempotency.still_running()
        time.sleep(0.1)


def transcription_attach(*, job: Job, key: ApiKey, ip: str, timeout: float | None) -> Steps[Job]:
    """An existing job as a call that had just submitted it would see it: waited for up to
    `timeout` (under the same waiting places) unless it is finished, or as it is now (None)."""
    leases.pool_maintenance()
    job = reroute_if_stranded(job)
    if timeout is None or job.is_finished:
        return job
    with _places_to_wait(key, ip) as may_wait, wakeup.hub.listening([wakeup.job_done_channel(job.id)]) as done:
        done.set()  # look again at once: it may have ended before we listened
        return (yield from _wait(job, done, timeout if may_wait else 0))


def _places_to_wait(key: ApiKey, ip: str) -> AbstractContextManager[bool]:
    by_address = (f"transcribe:address:{address_block(ip)}", settings.JPT_TRANSCRIBE_WAITING_PER_ADDRESS)
    if key.is_browser:  # web visitors share the browser key
        return places.places(by_address)
    return places.places(by_address, (f"transcribe:key:{key.pk}", settings.JPT_TRANSCRIBE_WAITING_PER_KEY))


# After a look failed for a lost database or cache connection, the next look is this much later.
LOOK_AGAIN_SECONDS = 0.5


def _wait(job: Job, done: Waiter, timeout: float) -> Steps[Job]:
    """The job once it has ended, or as last seen when `timeout` runs out. The job is stored by
    then, so a look that loses its database or shared cache (PostgreSQL or Redis restarted, a
    failover) is tried again rather than failing the call: a caller told "500, retry" would queue the clip
    twice, and one answered with the job as last seen still has its id to poll."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        look_again_in = None
        if done.is_set():
            done.clear()  # before looking: a change after this sets it again
            try:
                # Nobody else may be looking: keep the pool moving from here too.
                leases.pool_maintenance()
                job = reroute_if_stranded(pool.job_reload(job))
            except OUTAGES as lost:
                if connection.in_atomic_block:  # a caller's transaction is lost with it: theirs to handle
                    raise
                log.warning("transcription %s: looking at it failed (%s); looking again", job.pk, lost)
                connection.close()  # a broken connection goes; the next look takes another
                look_again_in = LOOK_AGAIN_SECONDS
            else:
                if job.is_finished:
                    return job
        remaining = deadline - time.monotonic()
        if remaining <= 0 or wakeup.hub.closing:
            return job
        # Until the job ends (or the hub's safety net wakes this call), or the deadline.
        if not (yield Wait(done, min(remaining, look_again_in or remaining), subject=job)):
            done.set()  # the deadline (or the time to look again): look once more


def transcription_for_owner(*, key: ApiKey, job_id: str) -> Job | None:
    """Only the key that sent a clip can see it; for anyone else it does not exist."""
    leases.pool_maintenance()
    job = Job.objects.select_related("key").filter(pk=job_id, key=key).exclude(route=Job.Route.POOL_CHECK).first()
    if job is None:
        return None
    return with_webhook_state([reroute_if_stranded(job)])[0]


def transcriptions_of(
    *, key: ApiKey, limit: int, after: str | None = None, statuses: list[str] | None = None
) -> tuple[list[Job], bool]:
    """The key's jobs, newest first: up to `limit` of them after the job `after` (a cursor: the
    last id of the page before), optionally of some internal statuses; and whether more follow.
    Checks of pool results (route pool_check) are nobody's transcriptions.
    Reads never translate: a listing shows what is stored."""
    jobs = Job.objects.filter(key=key).exclude(route=Job.Route.POOL_CHECK).order_by("-created_at", "-id")
    jobs = jobs.defer("segments")
    if statuses is not None:
        jobs = jobs.filter(status__in=statuses)
    if after is not None:
        cursor = Job.objects.filter(pk=after, key=key).values("created_at", "id").first()
        if cursor is None:
            raise NotFound(f"No transcription {after!r} for your key to list after.", param="after")
        jobs = jobs.filter(
            Q(created_at__lt=cursor["created_at"]) | Q(created_at=cursor["created_at"], id__lt=cursor["id"])
        )
    page = list(jobs[: limit + 1])
    return with_webhook_state(page[:limit]), len(page) > limit


# What a transcription its owner cancelled answers with (an operator's cancel: `pool.CANCELLED_BY_OPERATOR`).
CANCELLED_BY_OWNER = "Cancelled by its owner."
CANCELLED_CODE = pool.CANCELLED_CODE


def transcription_erase(*, key: ApiKey, job_id: str) -> tuple[Job, bool]:
    """DELETE /v1/transcriptions/{id}: its owner wants it gone. A transcription still queued or
    processing is cancelled first (credits refunded or the demo given back; its worker loses the
    lease and earns nothing); then what it holds of the caller is erased (`transcriptions_erase`).
    Only the key that sent the clip may: for anyone else it does not exist. Doing it again
    changes nothing. Returns the job as it now is, and whether this call cancelled it."""
    job = Job.objects.filter(pk=job_id, key=key).first()
    if job is None:
        raise NotFound("No transcription with this id for your key.")
    with transaction.atomic():
        cancelled = not job.is_finished and (pool.job_cancel(job=job, message=CANCELLED_BY_OWNER) is not None)
        transcriptions_erase(Job.objects.filter(pk=job.pk))
    job.refresh_from_db()
    return job, cancelled


def transcriptions_erase(jobs: QuerySet[Job]) -> int:
    """Erase the results of these transcriptions (those finished and not yet erased): everything
    that holds the caller's words or audio, the job's row keeping only what billing and the
    ledger need. The owner's DELETE, the operators' admin action and `sweep`'s retention all
    come here; whatever else comes to keep a transcription's words is cleared here too."""
    webhooks_forget_bodies(job_ids=jobs.values("pk"))  # first: `jobs` may name only unerased ones
    return pool.jobs_erase(jobs)


# How long one reader may hold the turn to translate a result (then another takes over).
TRANSLATING_SECONDS = 120


def _awaits_translation(job: Job) -> bool:
    return job.translate and job.status == Job.Status.COMPLETED and job.translation is None and job.erased_at is None


def _stored_translation(job: Job) -> tuple:
    return Job.objects.values_list("translation", "warnings", "erased_at").get(pk=job.pk)


def ensure_translation(job: Job) -> Job:
    """Translate a finished transcript once, on its first read, and store it.

    Readers that arrive while it is being translated wait for what is stored instead of
    translating it again, on any app server (the turn is kept in the shared cache). A
    transcription never fails because of its translation."""
    if not _awaits_translation(job):
        return job
    turn = f"jpt:translating:{job.id}"
    while not cache.add(turn, 1, TRANSLATING_SECONDS):
        time.sleep(0.1)
        job.translation, job.warnings, job.erased_at = _stored_translation(job)
        if not _awaits_translation(job):
            return job
    try:
        # Another reader may have stored it between our first look and taking the turn.
        job.translation, job.warnings, job.erased_at = _stored_translation(job)
        if _awaits_translation(job):
            _translate_and_store(job)
    finally:
        cache.delete(turn)
    return job


def _translate_and_store(job: Job) -> None:
    from translation import services as translation

    if not job.text.strip():
        job.translation = ""
    else:
        try:
            job.translation = translation.translate(job.text).text
        except translation.TranslationUnavailable as exc:
            # Said, not stored: the model may be on its way (`make run` prepares it), and the
            # first read after it is in place translates.
            earlier = [w for w in job.warnings if w.get("code") != "translation_unavailable"]
            job.warnings = [*earlier, {"code": "translation_unavailable", "message": str(exc)}]
            return
    # Not onto a result erased meanwhile.
    Job.objects.filter(pk=job.pk, erased_at__isnull=True).update(translation=job.translation, warnings=job.warnings)

"""Waiting for a transcription and presenting its result."""
from __future__ import annotations

import time

from django.conf import settings

from pool import services as pool
from pool import wakeup
from pool.models import Job, new_job_id
from transcription.routing import reroute_if_stranded, transcription_submit

PUBLIC_STATUS = {"queued": "queued", "leased": "processing", "completed": "completed", "failed": "failed",
                 "cancelled": "cancelled"}


def transcription_submit_and_wait(*, key, audio, translate: bool, ip: str, timeout: float) -> Job:
    """Route and queue a clip, then wait for it to end (or `timeout` to pass).

    The wake-up is registered before the job exists, so nothing can finish it
    unseen and the fresh job needs no first look in the database.
    """
    job_id = new_job_id()
    with wakeup.hub.listening([f"done:{job_id}"]) as done:
        job = transcription_submit(key=key, audio=audio, translate=translate, ip=ip, job_id=job_id)
        return _wait(job, done, timeout)


def _wait(job: Job, done, timeout: float) -> Job:
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        if done.is_set():
            done.clear()  # before looking: a change after this sets it again
            # Nobody else may be looking: keep the pool moving from here too.
            pool.pool_maintenance()
            job = reroute_if_stranded(pool.job_reload(job))
            if job.is_finished:
                return job
        remaining = deadline - time.monotonic()
        if remaining <= 0 or wakeup.hub.closing:
            return job
        wakeup.release_connection()
        if not done.wait(min(remaining, settings.JPT_WAKEUP_POLL_SECONDS)):
            done.set()  # the slow poll: look again anyway


def transcription_for_owner(*, key, job_id: str) -> Job | None:
    """Only the key that sent a clip can see it; for anyone else it does not exist."""
    pool.pool_maintenance()
    job = Job.objects.select_related("key").filter(pk=job_id, key=key).first()
    return reroute_if_stranded(job) if job is not None else None


def ensure_translation(job: Job) -> Job:
    """Translate a finished transcript on first read. A transcription never fails because of it."""
    if not job.translate or job.status != Job.Status.COMPLETED or job.translation is not None:
        return job
    if any(w.get("code") == "translation_unavailable" for w in job.warnings):
        return job
    from translation import services as translation

    if not job.text.strip():
        job.translation = ""
    else:
        try:
            job.translation = translation.translate(job.text).text
        except translation.TranslationUnavailable as exc:
            job.warnings = [*job.warnings, {"code": "translation_unavailable", "message": str(exc)}]
    Job.objects.filter(pk=job.pk).update(translation=job.translation, warnings=job.warnings)
    return job


def result_body(job: Job) -> dict:
    return {
        "id": job.id,
        "status": PUBLIC_STATUS[job.status],
        "language": job.language,
        "text": job.text,
        "translation": job.translation if job.translate else None,
        "duration_seconds": float(job.duration_seconds),
        "processed_by": job.processed_by,
        "route_reason": job.route_reason,
        "model": job.model,
        "segments": job.segments,
        "warnings": job.warnings,
        "created_at": job.created_at,
        "completed_at": job.finished_at,
    }


def pending_body(job: Job, status_url: str) -> dict:
    return {
        "id": job.id,
        "status": PUBLIC_STATUS[job.status],
        "status_url": status_url,
        "duration_seconds": float(job.duration_seconds),
        "processed_by": job.processed_by,
        "route_reason": job.route_reason,
        "created_at": job.created_at,
    }


def failure_body(job: Job) -> dict:
    code = job.error_code or "internal_error"
    message = job.error or "Transcription failed."
    if code == "internal_error" and "retry" not in message.lower():
        message += " Please retry."
    return {"error": {"code": code, "message": message}}


def failure_status(job: Job) -> int:
    return {"worker_required": 403}.get(job.error_code, 500)

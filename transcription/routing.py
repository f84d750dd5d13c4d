"""Where a clip runs: the spec's routing table, first match wins.

| pool_self   | the key's own worker is online                  | processed_by self        |
| server_demo | no own worker, clip <= 30 s, demos left for IP  | processed_by server_demo |
| pool_credit | credits cover the clip (held now, charged later)| processed_by pool        |
| 403         | none of the above                               | worker_required          |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from accounts import credits, quotas
from accounts.models import ApiKey
from jptranscribe.errors import ServiceError
from pool import leases
from pool import services as pool
from pool.models import Job, new_job_id
from pool.workers import workers_online
from transcription.webhooks import WebhookRequest, webhook_subscribe

if TYPE_CHECKING:
    from transcription.intake import CheckedAudio

Route = Job.Route


class WorkerRequired(ServiceError, status=403, code="worker_required"):
    """No route fits; the message says what to do."""


@dataclass(frozen=True)
class Decision:
    route: str
    reason: str
    demo_day: date | None = None  # the quota day a demo was taken from


def routes_to_try(
    *, own_online: bool, demo_online: bool, duration: float, is_server: bool, allow_self: bool = True
) -> tuple[str, ...]:
    """The routes open to a clip, in the order the spec tries them, before any demo or credit is
    taken: an own worker online wins outright; the demo only for short clips while it runs."""
    if allow_self and own_online:
        return (Route.POOL_SELF,)
    demo_fits = duration <= settings.JPT_DEMO_MAX_SECONDS and not is_server and demo_online
    return (Route.SERVER_DEMO, Route.POOL_CREDIT) if demo_fits else (Route.POOL_CREDIT,)


def _decide(*, key: ApiKey, duration: float, ip: str, job_id: str, allow_self: bool = True) -> Decision | str:
    """Pick a route, taking the demo or holding credits as needed. Returns why not, if none fits.

    Call inside a transaction: a hold of credits or a demo stands or falls with the job.
    """
    own_online, demo_online = workers_online(key)
    for route in routes_to_try(
        own_online=own_online,
        demo_online=demo_online,
        duration=duration,
        is_server=key.is_server,
        allow_self=allow_self,
    ):
        if route == Route.POOL_SELF:
            return Decision(route, "Your worker is online — job runs on your CPU")
        if route == Route.SERVER_DEMO:
            limit, day = settings.JPT_DEMOS_PER_IP_PER_DAY, quotas.today()
            if quotas.quota_take(scope=quotas.DEMOS, subject=ip, limit=limit, day=day):
                left = quotas.quota_remaining(scope=quotas.DEMOS, subject=ip, limit=limit, day=day)
                return Decision(route, f"No worker online — free server demo ({left} of {limit} left today)", day)
        if route == Route.POOL_CREDIT:
            balance = credits.credits_reserve(key=key, amount=duration, job_ref=job_id)
            if balance is not None:
                return Decision(
                    route, f"No worker online — {duration:g} s of pool credits used ({float(balance):g} s left)"
                )
    return _why_not(key=key, duration=duration, demo_online=demo_online)


def _why_not(*, key: ApiKey, duration: float, demo_online: bool) -> str:
    demo_max = settings.JPT_DEMO_MAX_SECONDS
    if duration > demo_max:
        demo = f"the free server demo takes clips up to {demo_max:g} s (this one is {duration:g} s)"
    elif not demo_online:
        demo = "the free server demo is offline right now"
    else:
        demo = (
            f"your {settings.JPT_DEMOS_PER_IP_PER_DAY} free server demos for today are used "
            "(they come back at 00:00 UTC)"
        )
    if key.is_browser:  # a visitor of the pages, with no key of its own
        return (
            f"The web demo cannot take this clip: {demo}. Mint a free key (/get-key/) and run worker.py "
            "(/worker/) to transcribe without these limits."
        )
    needed = float(credits.credits_missing(needed=duration, balance=credits.credits_balance(key)))
    return (
        f"No worker of yours is online, {demo}, and you need {needed:g} more seconds of pool credit. "
        "Run worker.py with this key (see /worker/) to transcribe on your own CPU and earn credits."
    )


def transcription_submit(
    *,
    key: ApiKey,
    audio: CheckedAudio,
    translate: bool,
    ip: str,
    job_id: str | None = None,
    options: dict | None = None,
    webhook: WebhookRequest | None = None,
) -> Job:
    """Route a checked clip and queue it, all or nothing. `options` are the caller's transcription
    options for the worker (`pool.policy.job_options`; None: none); `webhook` where its end is sent."""
    job_id = job_id or new_job_id()
    with transaction.atomic():
        decision = _decide(key=key, duration=audio.duration_seconds, ip=ip, job_id=job_id)
        if isinstance(decision, str):
            raise WorkerRequired(decision)
        job = pool.job_submit(
            job_id=job_id,
            key=key,
            route=decision.route,
            route_reason=decision.reason,
            audio=audio.data,
            content_type=audio.content_type,
            audio_format=audio.format,
            duration_seconds=audio.duration_seconds,
            voiced_seconds=audio.voiced_seconds,
            translate=translate,
            client_ip=ip or None,
            demo_day=decision.demo_day,
            options=options,
        )
        if webhook is not None:
            webhook_subscribe(key=key, job_id=job_id, webhook=webhook)
        return job


def reroute_if_stranded(job: Job) -> Job:
    """A pool_self job whose owner's worker went away is routed again like a new request.

    If nothing else can take it, it fails with a message saying why, instead of
    waiting forever for a worker that is gone.
    """
    if job.route != Route.POOL_SELF or job.status != Job.Status.QUEUED or workers_online(job.key)[0]:
        return job
    with transaction.atomic():
        key = credits.lock_key(job.key)
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.route != Route.POOL_SELF or job.status != Job.Status.QUEUED or workers_online(key)[0]:
            return job
        decision = _decide(
            key=key, duration=float(job.duration_seconds), ip=job.client_ip or "", job_id=job.id, allow_self=False
        )
        if isinstance(decision, str):
            leases.job_finish_failed(
                job, "Your worker went offline before it finished this clip. " + decision, code=WorkerRequired.code
            )
        else:
            pool.job_reroute(job=job, route=decision.route, route_reason=decision.reason, demo_day=decision.demo_day)
    job.refresh_from_db()
    return job

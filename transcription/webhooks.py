"""Webhooks, the caller's side: naming a URL with a request, and what a transcription's answer
says about its delivery. Sending is `transcription.delivery`'s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.services import webhook_signing_secrets
from jptranscribe.errors import InvalidRequest
from transcription import urlfetch
from transcription.models import DisabledWebhookUrl, WebhookDelivery

if TYPE_CHECKING:
    from accounts.models import ApiKey
    from pool.models import Job

Status = WebhookDelivery.Status


@dataclass(frozen=True)
class WebhookRequest:
    """A caller's `webhook_url`, and where its transcriptions are read (`…/v1/transcriptions/`,
    as the caller reached the API) for the events' `status_url`."""

    url: str
    transcriptions_url: str


def webhook_url_check(*, key: ApiKey, url: str) -> None:
    """Before anything is queued: the key may have webhooks, has a secret to sign them with, and the
    URL passes the guard audio URLs pass."""
    if key.is_browser:  # shared by every visitor of the pages
        raise InvalidRequest("Webhooks need an API key of your own: mint one with POST /v1/keys.", param="webhook_url")
    urlfetch.check_webhook_url(url)
    if not webhook_signing_secrets(key.pk):
        raise InvalidRequest(
            "Your key has no webhook signing secret yet: make one with POST /v1/webhook-secret, then send again.",
            param="webhook_url",
        )


def webhook_subscribe(*, key: ApiKey, job_id: str, webhook: WebhookRequest) -> None:
    """In the transaction that queues the job: its end will be sent to the URL. Naming a URL that
    was turned off (it answered 410 Gone) turns it on again."""
    DisabledWebhookUrl.objects.filter(key=key, url=webhook.url).delete()
    WebhookDelivery.objects.create(
        job_id=job_id, key=key, url=webhook.url, status_url=webhook.transcriptions_url + job_id
    )


def webhook_url_disable(*, key_id: int, url: str) -> int:
    """The receiver said 410 Gone: nothing more is sent to the URL for this key (until it is named
    again). Returns how many other events were dropped with it."""
    DisabledWebhookUrl.objects.get_or_create(key_id=key_id, url=url)
    return WebhookDelivery.objects.filter(
        Q(status=Status.WAITING) | Q(status=Status.PENDING), key_id=key_id, url=url
    ).update(status=Status.DISABLED, next_attempt_at=None)


def webhook_retry_now(deliveries: Iterable[WebhookDelivery]) -> int:
    """An operator's "retry now": each is due at once, whatever became of it (a delivered one is
    sent again, with the same webhook-id). Waiting ones stay waiting for their transcription."""
    ids = [d.pk for d in deliveries]
    return (
        WebhookDelivery.objects.filter(pk__in=ids)
        .exclude(status=Status.WAITING)
        .update(status=Status.PENDING, next_attempt_at=timezone.now())
    )


def webhooks_forget_bodies(*, job_ids: Iterable[str] | QuerySet) -> None:
    """When results are erased: a stored body holds the text. One still to be sent is rendered
    again from the erased transcription when it goes."""
    WebhookDelivery.objects.filter(job_id__in=job_ids).exclude(body="").update(body="")


def with_webhook_state(jobs: list[Job]) -> list[Job]:
    """Sets each job's `webhook_delivery` (its latest, or None) for the answer's `webhook`: one query."""
    latest: dict[str, WebhookDelivery] = {}
    for delivery in WebhookDelivery.objects.filter(job_id__in=[job.pk for job in jobs]).order_by("created_at"):
        latest[delivery.job_id] = delivery
    for job in jobs:
        job.webhook_delivery = latest.get(job.pk)
    return jobs


def webhook_state(delivery: WebhookDelivery | None) -> dict[str, str | int | datetime | None] | None:
    """The `webhook` object of a transcription's answer."""
    if delivery is None:
        return None
    return {
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == Status.PENDING else None,
    }

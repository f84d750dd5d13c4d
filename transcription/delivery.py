"""Webhook delivery: a loop in every app server process (or in `manage.py webhooks deliver`) that
turns ended transcriptions into events, takes the due ones like pool jobs (rows no other
process holds), and sends each signed per Standard Webhooks, retrying with backoff for about
three days. Never in a request thread; never inside a transaction while a receiver is called.

At least once: a process that dies mid-send leaves its event due again a little later, so a
receiver can get an event twice, with the same `webhook-id` to tell.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.services import webhook_signing_secrets
from jptranscribe.errors import ServiceError
from jptranscribe.sql import db_datetime, run
from jptranscribe.waiting import Waiter, release_connection
from pool import wakeup
from pool.models import Job
from transcription import services, urlfetch
from transcription import statements as sql
from transcription.models import DisabledWebhookUrl, WebhookDelivery
from transcription.serializers import transcription_answer
from transcription.webhooks import webhook_url_disable

log = logging.getLogger(__name__)
Status = WebhookDelivery.Status
Event = WebhookDelivery.Event

EVENT_OF: dict[str, str] = {
    Job.Status.COMPLETED: Event.COMPLETED,
    Job.Status.FAILED: Event.FAILED,
    Job.Status.CANCELLED: Event.CANCELLED,
}
# Past this, the event carries only the transcription's id, status and status_url.
MAX_BODY_BYTES = 20 * 1024
# Wake-ups from ended jobs are gathered this long: under load one look serves many.
GATHER_SECONDS = 0.1


def _claim_seconds() -> float:
    """How long a taken event is left alone: past any send, so only a process that died lets it go."""
    return settings.JPT_WEBHOOK_TIMEOUT_SECONDS * 2 + 30


# --- The steps, each one short transaction ---------------------------------------------------------


def webhook_events_open(limit: int = 1000, *, corrections: bool = True) -> int:
    """Deliveries whose transcription has ended become events due now; a transcription corrected
    after its event gets one more (unless `corrections` is False)."""
    found = WebhookDelivery.objects.filter(status=Status.WAITING, job__status__in=Job.FINISHED).values_list(
        "id", "job__status"
    )[:limit]
    by_event: dict[str, list[str]] = defaultdict(list)
    for delivery_id, job_status in found:
        by_event[EVENT_OF[job_status]].append(delivery_id)
    now = timezone.now()
    opened = sum(
        WebhookDelivery.objects.filter(pk__in=ids, status=Status.WAITING).update(
            status=Status.PENDING, event_type=event, event_at=now, next_attempt_at=now
        )
        for event, ids in by_event.items()
    )
    return opened + (_corrections_open(now) if corrections else 0)


def _corrections_open(now: datetime) -> int:
    """A corrected transcription's `transcription.corrected` event, once the event it corrects is no
    longer being sent: sent beside a retry of it, the old text could reach the receiver last. For a
    URL turned off (410) it is recorded as such, and not looked for again."""
    corrected = (
        Job.objects.filter(verification=Job.Verification.CORRECTED, finished_at__gte=now - timedelta(days=7))
        .filter(webhook_deliveries__event_type__in=list(EVENT_OF.values()))
        .exclude(webhook_deliveries__event_type=Event.CORRECTED)
        .exclude(webhook_deliveries__status=Status.PENDING)
        .values_list("pk", flat=True)
        .distinct()[:100]
    )
    opened = 0
    for job_id in list(corrected):
        first = WebhookDelivery.objects.filter(job_id=job_id).order_by("created_at").first()
        if first is None:
            continue
        off = (
            first.status == Status.DISABLED
            or DisabledWebhookUrl.objects.filter(key_id=first.key_id, url=first.url).exists()
        )
        WebhookDelivery.objects.create(
            job_id=job_id,
            key_id=first.key_id,
            url=first.url,
            status_url=first.status_url,
            status=Status.DISABLED if off else Status.PENDING,
            event_type=Event.CORRECTED,
            event_at=now,
            next_attempt_at=None if off else now,
        )
        opened += not off
    return opened


def webhook_deliveries_take(limit: int) -> list[WebhookDelivery]:
    """Up to `limit` due events, held for this process (others skip them) until sent."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:limit]
        )
        if due:
            WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(
                next_attempt_at=now + timedelta(seconds=_claim_seconds())
            )
    return due


def webhook_deliver(delivery: WebhookDelivery, session: requests.Session) -> None:
    """Send one event (outside any transaction) and record what came of it."""
    body = delivery.body or _body(delivery)
    signers = webhook_signing_secrets(delivery.key_id)
    if not signers:  # cannot happen through the API, which asks for the secret first
        _record(delivery, None, "the key has no webhook signing secret", None)
        return
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": delivery.pk,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(delivery.pk, now, body) for secret in signers),
    }
    try:
        answer = urlfetch.post(
            session, delivery.url, body.encode(), headers, timeout=settings.JPT_WEBHOOK_TIMEOUT_SECONDS
        )
    except ServiceError as exc:  # the guard: the name now leads inside, or does not resolve
        _record(delivery, None, exc.message, None)
    except requests.RequestException as exc:
        if isinstance(exc.__context__, ServiceError):
            _record(delivery, None, str(exc.__context__), None)
        else:
            _record(delivery, None, f"{exc.__class__.__name__}: {exc}"[:300], None)
    else:
        _record(delivery, answer.status, "", answer.retry_after)


def _body(delivery: WebhookDelivery) -> str:
    """The event as first sent: the transcription as GET /v1/transcriptions/{id} shows it (translated
    first when asked), or just its id, status and status_url when that is too long. Stored, so each
    retry carries the same body."""
    job = services.ensure_translation(Job.objects.select_related("key").get(pk=delivery.job_id))
    data = transcription_answer(job, delivery.status_url)
    data.pop("webhook", None)  # how this very delivery stands: not part of the event
    event_time = job.finished_at or delivery.event_at or timezone.now()
    envelope = {"type": delivery.event_type, "timestamp": event_time.isoformat().replace("+00:00", "Z"), "data": data}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    if len(body.encode()) > MAX_BODY_BYTES:
        envelope["data"] = {"id": job.pk, "status": data["status"], "status_url": delivery.status_url}
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(body=body)
    return body


def retry_delay(attempts: int, retry_after: str | None) -> float | None:
    """Seconds until the next try after `attempts` failed ones (None: give up). The schedule's step
    a tenth either way at random, so retries of many events do not arrive together; never sooner
    than the receiver's Retry-After, never later than the schedule's longest step."""
    schedule = settings.JPT_WEBHOOK_RETRY_SECONDS
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * random.uniform(0.9, 1.1)
    asked = _seconds_from(retry_after)
    if asked is not None:
        delay = max(delay, min(asked, max(schedule)))
    return delay


def _seconds_from(retry_after: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not retry_after:
        return None
    value = retry_after.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _record(delivery: WebhookDelivery, status_code: int | None, error: str, retry_after: str | None) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields: dict[str, object] = {"attempts": attempts, "last_status_code": status_code, "last_error": error[:300]}
    if status_code is not None and 200 <= status_code < 300:
        fields.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None, last_error="")
    elif status_code == 410:
        fields.update(status=Status.DISABLED, next_attempt_at=None, last_error="410 Gone: the URL is turned off")
    else:
        if status_code is not None:
            fields["last_error"] = f"HTTP {status_code}"
        delay = retry_delay(attempts, retry_after)
        if delay is None:
            fields.update(status=Status.FAILED, next_attempt_at=None)
        else:
            fields.update(next_attempt_at=now + timedelta(seconds=delay))
    WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING).update(**fields)
    if status_code == 410:
        webhook_url_disable(key_id=delivery.key_id, url=delivery.url)


# --- The loop ----------------------------------------------------------------------------------------


class DeliveryLoop:
    """One per process: a thread that finds work, and a few that send."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = concurrency or settings.JPT_WEBHOOK_CONCURRENCY
        self._senders = ThreadPoolExecutor(self.concurrency, thread_name_prefix="jpt-webhook-send")
        self._sessions = threading.local()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._stop = threading.Event()
        self._woken: Waiter | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> DeliveryLoop:
        self._thread = threading.Thread(target=self.run, name="jpt-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        """Stop taking events; sends under way finish (or are taken again later, if cut off)."""
        self._stop.set()
        if self._woken is not None:
            self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._senders.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                with wakeup.hub.listening([wakeup.any_job_done_channel()]) as woken:
                    self._woken = woken
                    last_full_look = 0.0
                    while not self._stop.is_set():
                        woken.clear()
                        # Corrections are looked for on the timer; a job ending needs only a glance.
                        full_look = time.monotonic() - last_full_look >= settings.JPT_WEBHOOK_POLL_SECONDS
                        if full_look:
                            last_full_look = time.monotonic()
                        more = self.step(glance=not full_look)
                        release_connection()
                        if not more:
                            woken.wait(settings.JPT_WEBHOOK_POLL_SECONDS)
                            self._stop.wait(GATHER_SECONDS)
            except Exception:  # the loop must outlive a database restart
                log.exception("webhook delivery loop failed; starting again in 1 s")
                close_old_connections()
                self._stop.wait(1)

    def step(self, *, glance: bool = False) -> bool:
        """Open ended transcriptions' events and start sending what is due, as far as there are free
        senders; True when more may be due at once. A `glance` first asks whether there is any such
        work, and leaves corrected transcriptions for the next full look."""
        if glance:
            if not run(sql.WEBHOOK_WORK, {"now": db_datetime(timezone.now())}).value("work"):
                return False
            webhook_events_open(corrections=False)
        else:
            webhook_events_open()
        with self._lock:
            free = self.concurrency - self._in_flight
            self._slot_freed.clear()
        if free <= 0:
            self._slot_freed.wait(1)
            return True
        due = webhook_deliveries_take(free)
        for delivery in due:
            with self._lock:
                self._in_flight += 1
            self._senders.submit(self._send, delivery)
        return len(due) == free

    def run_until_idle(self, timeout: float = 60) -> None:
        """Send everything due now and wait for it (`manage.py webhooks deliver --once`, tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            more = self.step()
            with self._lock:
                idle = self._in_flight == 0
            if idle and not more:
                return
            if not more:
                self._slot_freed.wait(0.05)

    def _send(self, delivery: WebhookDelivery) -> None:
        try:
            session = getattr(self._sessions, "session", None)
            if session is None:
                session = self._sessions.session = urlfetch.webhook_session()
            webhook_deliver(delivery, session)
        except Exception:
            log.exception("delivering webhook event %s failed", delivery.pk)
        finally:
            connection.close()  # this thread's connection goes back (to the pool, on PostgreSQL)
            with self._lock:
                self._in_flight -= 1
            self._slot_freed.set()
            if self._woken is not None:
                self._woken.set()


_loop: DeliveryLoop | None = None


def start_in_this_process() -> None:
    """An app server's start hook (JPT_WEBHOOK_DELIVERY)."""
    global _loop
    if _loop is None:
        _loop = DeliveryLoop().start()


def stop_in_this_process() -> None:
    global _loop
    if _loop is not None:
        _loop.stop()
        _loop = None

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey
from pool.models import Job


def new_event_id() -> str:
    """A webhook event's id, the `webhook-id` header: the same on every attempt to deliver it."""
    return "msg_" + secrets.token_hex(12)


class WebhookDelivery(models.Model):
    """One event about a transcription, for the URL its caller named, until it is delivered or
    given up on. Made with the job (waiting for it to end); the delivery loop turns it into the
    event when the job ends, then sends it and retries it (`transcription.webhooks`)."""

    class Status(models.TextChoices):
        WAITING = "waiting"  # for the transcription to end
        PENDING = "pending"  # to be sent at `next_attempt_at` (the first time, or again)
        DELIVERED = "delivered"  # the receiver answered 2xx
        FAILED = "failed"  # every attempt failed
        DISABLED = "disabled"  # the URL answered 410 Gone: turned off for the key

    class Event(models.TextChoices):
        COMPLETED = "transcription.completed"
        FAILED = "transcription.failed"
        CANCELLED = "transcription.cancelled"
        # A check after delivery outvoted the text, which was replaced (pool.verification).
        CORRECTED = "transcription.corrected"

    id = models.CharField(primary_key=True, max_length=32, default=new_event_id, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_deliveries")
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=2048)
    # Where the transcription is read (GET /v1/transcriptions/{id}), as its caller reached the API.
    status_url = models.CharField(max_length=2048)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    event_type = models.CharField(max_length=32, choices=Event.choices, blank=True)
    # The body exactly as sent, fixed when first sent (every retry carries the same event).
    body = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # When the loop may take it next; a taken one is pushed past its send, so a process that
    # dies mid-send leaves it due again.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    event_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_due_idx"),
            models.Index(fields=["job"], condition=Q(status="waiting"), name="webhook_waiting_idx"),
            models.Index(fields=["key", "url"], name="webhook_key_url_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["waiting", "pending", "delivered", "failed", "disabled"]),
                name="webhook_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.id


class DisabledWebhookUrl(models.Model):
    """A URL that answered 410 Gone to one of the key's deliveries: nothing more is sent to it
    until the key names it again in a request."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=2048)
    disabled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "url"], name="one_disabled_row_per_url")]

    def __str__(self) -> str:
        return self.url

"""The webhook delivery loop's one hot question in SQL (see `jptranscribe.sql`)."""

from __future__ import annotations

from jptranscribe.sql import Statement, literal, table
from pool.models import Job
from transcription.models import WebhookDelivery

DELIVERY, JOB = table(WebhookDelivery), table(Job)
WAITING, PENDING = literal(WebhookDelivery.Status.WAITING), literal(WebhookDelivery.Status.PENDING)
FINISHED = ", ".join(literal(status) for status in Job.FINISHED)

# Whether a look is worth taking: an ended transcription's event to open, or an event due. Every
# ended job wakes the loop, and most have no webhook: one cheap query (on the two partial
# indexes) instead of the four a look takes.
WEBHOOK_WORK = Statement(
    "webhook_work",
    f"SELECT EXISTS (SELECT 1 FROM {DELIVERY} d JOIN {JOB} j ON j.id = d.job_id WHERE d.status = {WAITING}"
    f" AND j.status IN ({FINISHED})) OR EXISTS (SELECT 1 FROM {DELIVERY} WHERE status = {PENDING}"
    f" AND next_attempt_at <= %(now)s) AS work",
)

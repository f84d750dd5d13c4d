import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey

JOB_ID_PREFIX = "tx_"
JOB_ID_PATTERN = r"^tx_[0-9a-f]{20}$"


def new_job_id() -> str:
    return JOB_ID_PREFIX + secrets.token_hex(10)


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(JOB_ID_PATTERN, value) is not None


def new_lease_id() -> str:
    return secrets.token_urlsafe(16)


def online_since() -> datetime:
    return timezone.now() - timedelta(seconds=settings.JPT_WORKER_ONLINE_SECONDS)


class WorkerQuerySet(models.QuerySet["Worker"]):
    def online(self) -> Self:
        """Seen recently, not signed off, not banned: only these count for routing.

        `pool.statements.WORKERS_ONLINE` is the same rule in SQL, for routing's hot path, and
        `KEY_WORKERS_ONLINE` for /v1/account."""
        return self.filter(
            last_seen_at__gte=online_since(),
            signed_off_at__isnull=True,
            key__workers_banned_at__isnull=True,
            key__revoked_at__isnull=True,
        )


class Worker(models.Model):
    """A running worker client, identified by the id its client chose, within its key."""

    # Not columns: when a pool call loaded it (`pool.workers`), how many jobs it held, and how
    # many its key's online workers run at once.
    held_jobs: int | None = None
    key_places: int | None = None

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="workers")
    client_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    engine = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=100, blank=True)
    version = models.CharField(max_length=40, blank=True)
    # A worker process names a new session when it starts: jobs held under an older one were lost
    # with that process, and go back to the queue at once.
    session_id = models.CharField(max_length=64, blank=True)
    # How many jobs it runs at once, as it declared (at most JPT_WORKER_MAX_JOBS).
    max_jobs = models.PositiveSmallIntegerField(default=1)
    registered_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Registration lasts this long after the last heartbeat (the spec's ~15 min TTL).
    expires_at = models.DateTimeField()
    signed_off_at = models.DateTimeField(null=True, blank=True)
    jobs_done = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    audio_seconds = models.FloatField(default=0)
    processing_seconds = models.FloatField(default=0)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "client_id"], name="one_worker_per_client_id")]
        # Whether a key has a worker online, found at its most recently seen one (routing asks on
        # every submit).
        indexes = [models.Index(fields=["key", "last_seen_at"], name="worker_key_seen_idx")]

    def __str__(self) -> str:
        return f"{self.name or self.client_id} ({self.key.prefix})"

    @property
    def is_registered(self) -> bool:
        return self.expires_at > timezone.now() and self.signed_off_at is None

    @property
    def is_online(self) -> bool:
        return (
            self.signed_off_at is None
            and self.key.workers_banned_at is None
            and (timezone.now() - self.last_seen_at).total_seconds() <= settings.JPT_WORKER_ONLINE_SECONDS
        )

    @property
    def real_time_factor(self) -> float | None:
        return self.processing_seconds / self.audio_seconds if self.audio_seconds else None


class Job(models.Model):
    """One clip to transcribe, from upload until its caller has the result."""

    class Route(models.TextChoices):
        POOL_SELF = "pool_self"
        SERVER_DEMO = "server_demo"
        POOL_CREDIT = "pool_credit"
        # A copy of a pool_credit job's clip, run by a worker of another key to check a result
        # (pool.verification): nobody's transcription, never shown, paid by the house.
        POOL_CHECK = "pool_check"

    class Status(models.TextChoices):
        QUEUED = "queued"
        LEASED = "leased"  # a worker holds it
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        # A result is in, held back until another worker's agrees (pool.verification).
        CHECKING = "checking"

    class Verification(models.TextChoices):
        UNCHECKED = "unchecked"
        CHECKED = "checked"  # another key's worker got the same text
        CORRECTED = "corrected"  # a check after delivery outvoted the text, which was replaced

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    # Not a column: the audio a claim hands over with the job, when the worker asked for it.
    inline_audio: bytes | None = None
    # Not a column: the latest webhook delivery of the job, when an answer about it shows one
    # (set by transcription.webhooks, which owns webhooks).
    webhook_delivery: Any = None

    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    # Found by key through job_key_created_idx, which leads with it: an index of its own would only
    # cost every write (see Meta).
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    route = models.CharField(max_length=12, choices=Route.choices)
    # A check copy's original job (route pool_check only).
    checks = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="check_copies", db_index=False
    )  # found through job_checks_idx
    # A check copy only a trusted key's worker (or the server's) may take: the run that decides.
    check_by_trusted = models.BooleanField(default=False)
    route_reason = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    language = models.CharField(max_length=8, default="ja")
    translate = models.BooleanField(default=False)
    # The caller's transcription options, handed to the worker with the claim:
    # {"prompt": str | None, "temperature": float | None, "word_timestamps": bool} (pool.policy.job_options);
    # {} once erased (the prompt is the caller's words).
    options = models.JSONField(default=dict, blank=True)
    duration_seconds = models.DecimalField(max_digits=8, decimal_places=3)
    # Seconds of it louder than near-silence (measured at intake): an empty transcript of a
    # clip with speech is implausible.
    voiced_seconds = models.FloatField(default=0)
    audio_format = models.CharField(max_length=8)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # The demo quota day this job used, to give the demo back if the job fails.
    demo_day = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now)

    worker = models.ForeignKey(Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    lease_id = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # However often the worker renews it, a lease ends here (JPT_LEASE_MAX_SECONDS after the claim).
    lease_hard_expires_at = models.DateTimeField(null=True, blank=True)
    # Which of its worker's `max_jobs` places the job takes: one job a place, so a worker never
    # holds more than it declared, even with claims racing.
    worker_slot = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    failures = models.PositiveSmallIntegerField(default=0)

    text = models.TextField(blank=True)
    segments = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=100, blank=True)
    translation = models.TextField(null=True, blank=True)  # noqa: DJ001 - None: not translated yet, "" is a translation
    warnings = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # The API error code a failed job answers its caller with.
    error_code = models.CharField(max_length=32, blank=True)
    verification = models.CharField(max_length=10, choices=Verification.choices, default=Verification.UNCHECKED)
    # How many workers' transcripts agree with the text (1: only its own worker's).
    agreeing_workers = models.PositiveSmallIntegerField(default=1)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When its text, segments, translation, warnings and the caller's prompt were cleared (by its
    # owner, an operator, or after JPT_RESULT_RETENTION_DAYS); the row keeps what billing needs.
    erased_at = models.DateTimeField(null=True, blank=True)

    # Every index here is written on each of a job's three writes (queued, leased, done: a status
    # change is never a heap-only update): the pool bench's job cycle wrote 7 that are not partial.
    # So none is kept that another covers, nor Django's pattern-matching copies of the text keys
    # (`_like`, for LIKE 'x%', which nothing here asks): migration 0008.
    class Meta:
        indexes = [
            # The claim's hot path: queued jobs by route, oldest first.
            models.Index(fields=["route", "queued_at"], condition=Q(status="queued"), name="job_queued_idx"),
            models.Index(fields=["lease_expires_at"], condition=Q(status="leased"), name="job_leased_idx"),
            models.Index(fields=["key", "-created_at"], name="job_key_created_idx"),
            # Queued jobs are left out: the claim finds them through job_queued_idx. A claim's plan
            # made while the table was small (a prepared statement's, kept for the connection's
            # life) picked this index instead, and walked every job ever queued: 2,000 pages a claim.
            models.Index(
                fields=["status", "-created_at"], condition=~Q(status="queued"), name="job_status_created_idx"
            ),
            models.Index(fields=["checks"], condition=Q(checks__isnull=False), name="job_checks_idx"),
            # Corrected results, for the corrections' webhook events.
            models.Index(fields=["finished_at"], condition=Q(verification="corrected"), name="job_corrected_idx"),
            # The sweep's look for results past their retention: only finished, unerased jobs.
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False, erased_at__isnull=True),
                name="job_unerased_finished_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "leased", "completed", "failed", "cancelled", "checking"]),
                name="job_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="leased") | (Q(worker__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="leased_job_has_holder",
            ),
            models.UniqueConstraint(
                fields=["worker", "worker_slot"], condition=Q(status="leased"), name="one_held_job_per_worker_slot"
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def processed_by(self) -> str:
        routes = {"pool_self": "self", "server_demo": "server_demo", "pool_credit": "pool", "pool_check": "pool"}
        return routes[self.route]


class JobAudio(models.Model):
    """The uploaded bytes, apart from the job row so listing jobs never loads them.

    Kept in the database so every app server sees the same audio; deleted as soon
    as the job ends.
    """

    job = models.OneToOneField(Job, primary_key=True, on_delete=models.CASCADE, related_name="audio")
    data = models.BinaryField()
    content_type = models.CharField(max_length=60)


class JobAttempt(models.Model):
    """One lease of a job by one worker: the history admins and retries look at."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        EXPIRED = "expired"
        ABANDONED = "abandoned"  # the job was cancelled or re-routed under it

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_log", db_index=False)
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="attempts")
    lease_id = models.CharField(max_length=32)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    error = models.CharField(max_length=500, blank=True)
    # How the worker got the clip: in the claim's answer, or by fetching it (a result from a
    # worker that did neither is implausible).
    audio_inline = models.BooleanField(default=False)
    audio_fetched = models.BooleanField(default=False)

    class Meta:
        # As a field's index and unique=True would make them, without Django's `_like` copies: a
        # claim writes this row (see Job.Meta).
        indexes = [models.Index(fields=["job"], name="attempt_job_idx")]
        constraints = [models.UniqueConstraint(fields=["lease_id"], name="attempt_lease_id_unique")]


class KeyTrust(models.Model):
    """A worker key's record as a source of results (pool.verification): how many of its results
    were checked against another key's, how many agreed, how many in a row, its strikes.
    New until TRUSTED_AFTER results in a row agreed; a failed check makes it new again; three
    strikes within a day quarantine it (its workers take only their own key's jobs)."""

    TRUSTED_AFTER = 10

    class Level(models.TextChoices):
        NEW = "new"
        TRUSTED = "trusted"
        QUARANTINED = "quarantined"

    key = models.OneToOneField(ApiKey, primary_key=True, on_delete=models.CASCADE, related_name="trust")
    checks = models.PositiveIntegerField(default=0)
    agreements = models.PositiveIntegerField(default=0)
    consecutive_agreements = models.PositiveIntegerField(default=0)
    strikes = models.PositiveIntegerField(default=0)
    quarantined_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key.prefix}: {self.level}"

    @property
    def level(self) -> str:
        if self.quarantined_at is not None:
            return self.Level.QUARANTINED
        if self.consecutive_agreements >= self.TRUSTED_AFTER:
            return self.Level.TRUSTED
        return self.Level.NEW


class Strike(models.Model):
    """Something a key's worker did that honest ones do not: an outvoted or implausible result."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="strikes")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set when an operator lifted the quarantine it led to, or vouched for the key: it stays on the
    # record and no longer counts towards a quarantine (pool.verification.quarantine_clear).
    cleared_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key.prefix}: {self.reason}"


class JobResult(models.Model):
    """One worker's transcript of a pool clip: the original run's and each check copy's, compared
    with one another to decide what the caller gets (pool.verification)."""

    class Verdict(models.TextChoices):
        OPEN = "open"  # not compared yet
        AGREED = "agreed"
        OUTVOTED = "outvoted"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="results", db_index=False)  # the original
    # The row the worker held: found through one_result_per_run.
    run = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    worker = models.ForeignKey(Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    # Whether the key was trusted (or the server's) when it gave the result: a check by such a
    # key can decide alone.
    independent = models.BooleanField(default=False)
    text = models.TextField(blank=True)
    segments = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=100, blank=True)
    implausible = models.CharField(max_length=300, blank=True)
    verdict = models.CharField(max_length=10, choices=Verdict.choices, default=Verdict.OPEN)
    cer = models.FloatField(null=True, blank=True)  # to the text the job ended with
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["job"], name="result_job_idx")]  # without a `_like` copy
        constraints = [models.UniqueConstraint(fields=["run"], name="one_result_per_run")]

    def __str__(self) -> str:
        return f"{self.job_id} by {self.key_id}: {self.verdict}"

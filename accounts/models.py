import base64
import hashlib
import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.db.models import Q
from django.utils import timezone

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_BODY_LENGTH = 40  # ~238 bits: a hash without salt is enough at this entropy
PREFIX_LENGTH = 12  # "jpt_" + 8 characters, shown in the dashboard and the admin
# The key that anonymous visitors of the web pages act under, through the browser proxy.
# Its stored "hash" is no SHA-256 digest, so no bearer token can ever match it.
BROWSER_KEY_HASH = "browser-proxy"
BROWSER_KEY_PREFIX = "jpt_browser"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def cached_key_name(hashed_key: str) -> str:
    return f"jpt:api-key:{hashed_key}"


# Authentication keeps keys in the shared cache this long (every request reads one).
KEY_CACHE_SECONDS = 60
# What a key's cached copy becomes when the key changes, for as long as a copy could live: a
# request that read the key just before the change only *adds* its copy, so it cannot put the
# stale key back, and lookups read the database until this runs out.
KEY_CHANGED = "changed"


class ApiKeyQuerySet(models.QuerySet):
    def for_bearer(self, raw_key: str):
        """The live key matching a raw bearer token, or None."""
        if not raw_key.startswith("jpt_") or len(raw_key) != 4 + KEY_BODY_LENGTH:
            return None
        return self.filter(hashed_key=hash_key(raw_key), revoked_at__isnull=True).first()


class ApiKey(models.Model):
    """A bearer key. Only its hash is stored; the raw key is shown once at minting."""

    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_ip = models.GenericIPAddressField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The server's own demo worker authenticates with a server key; only it may
    # claim server_demo jobs.
    is_server = models.BooleanField(default=False)
    # A banned key may still call the API but can no longer run workers.
    workers_banned_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        # The server's few keys, found without reading every key (routing asks whether the demo
        # worker is online on every submit).
        indexes = [models.Index(fields=["id"], condition=Q(is_server=True), name="key_server_idx")]

    def __str__(self):
        return self.prefix

    # Lets DRF treat the key as request.user.
    is_authenticated = True
    is_anonymous = False

    @classmethod
    def mint(cls, *, created_ip=None, is_server=False, note="", raw_key=None):
        """Create a key and return (key, raw_key). The raw key is never stored."""
        if raw_key is None:
            raw_key = "jpt_" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_BODY_LENGTH))
        key = cls.objects.create(
            prefix=raw_key[:PREFIX_LENGTH],
            hashed_key=hash_key(raw_key),
            created_ip=created_ip,
            is_server=is_server,
            note=note,
        )
        return key, raw_key

    @property
    def is_browser(self):
        return self.hashed_key == BROWSER_KEY_HASH

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def touch(self):
        """Record use. Called when authentication loads the key from the database, which the
        key cache makes about once a minute per key."""
        self.last_used_at = timezone.now()
        ApiKey.objects.filter(pk=self.pk).update(last_used_at=self.last_used_at)

    @property
    def cache_key(self):
        return cached_key_name(self.hashed_key)

    def forget_cached(self) -> None:
        """Call after any change: authentication reads keys from the shared cache, on every node."""
        cache.set(self.cache_key, KEY_CHANGED, KEY_CACHE_SECONDS)


class CreditEntry(models.Model):
    """One change to a key's pool credits. The balance is the sum of these rows, nothing else."""

    class Kind(models.TextChoices):
        EARNED = "earned"  # + processed another key's audio
        RESERVED = "reserved"  # - held when a pool_credit job is routed
        CHARGED = "charged"  # 0: the hold became final when the job succeeded
        REFUNDED = "refunded"  # + the hold returned when the job failed or was cancelled
        GRANTED = "granted"  # +/- by an operator, with a reason
        # Earnings for a pool result are pending until it is confirmed (another key's worker
        # agreed, or a holding period passed without a failed check), then spendable:
        PENDING = "pending"  # + not in the balance: seconds earned, not spendable yet
        CONFIRMED = "confirmed"  # + the pending seconds join the balance
        VOIDED = "voided"  # 0: a failed check voided the pending seconds

    # Kinds whose seconds are not (yet) the key's: the balance is the sum of the other rows.
    NOT_IN_BALANCE = (Kind.PENDING,)

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="credit_entries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    seconds = models.DecimalField(max_digits=12, decimal_places=3)
    job_ref = models.CharField(max_length=32, blank=True)  # indexed in Meta, without a `_like` copy
    reason = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "credit entries"
        ordering = ["-created_at", "-id"]
        # Two entries are written for most pool jobs: no index beyond those the ledger is read by.
        indexes = [models.Index(fields=["job_ref"], name="entry_job_ref_idx")]
        constraints = [
            # The database itself refuses a second charge, refund or earning for one job.
            models.UniqueConstraint(
                fields=["job_ref", "kind"],
                condition=~Q(job_ref="") & ~Q(kind="granted"),
                name="one_entry_per_job_and_kind",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.seconds} s ({self.key.prefix})"


class CreditBalance(models.Model):
    """A key's ledger summed, kept in step by every ledger row that moves seconds (same transaction).

    Routing reads and holds credits with one guarded UPDATE of this row instead of locking the
    key and summing a ledger that grows with every job. Whole milliseconds, so both databases
    add and compare exactly. The ledger stays the record: a test checks that the two agree."""

    key = models.OneToOneField(ApiKey, primary_key=True, on_delete=models.CASCADE, related_name="+")
    milliseconds = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.milliseconds / 1000:g} s"


class DailyQuota(models.Model):
    """A per-day counter shared by every process: demos per IP, keys per IP."""

    scope = models.CharField(max_length=20)
    subject = models.CharField(max_length=64)
    day = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "subject", "day"], name="one_quota_row")]


def new_webhook_secret() -> str:
    """Standard Webhooks' form: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookSecret(models.Model):
    """The secret a key's webhook deliveries are signed with (HMAC-SHA256).

    Kept readable, not hashed: signing needs the secret itself. After a rotation the previous
    one still signs for a while (JPT_WEBHOOK_SECRET_OVERLAP_HOURS), so receivers can switch
    without missing an event."""

    key = models.OneToOneField(ApiKey, primary_key=True, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=64)
    previous_secret = models.CharField(max_length=64, blank=True)
    rotated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"signing secret of {self.key.prefix}"

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets that sign now: the current one first, then the previous one during the overlap."""
        now = now or timezone.now()
        overlap = timedelta(hours=settings.JPT_WEBHOOK_SECRET_OVERLAP_HOURS)
        if self.previous_secret and now - self.rotated_at < overlap:
            return [self.secret, self.previous_secret]
        return [self.secret]


class IdempotentRequest(models.Model):
    """A request sent with an `Idempotency-Key` (accounts.idempotency): what a retry with the same
    key gets instead of a second run. Only a keyed hash of the client's key is stored, and a stored
    answer is encrypted under that key, so the database alone reveals neither (nor a minted API key)."""

    # Whose keys these are: "key:<api key id>", or an address block ("browser:…" for web visitors,
    # who share the browser key; "ip:…" for key minting, which has no key yet).
    scope = models.CharField(max_length=80)
    key_hash = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path, fields and files
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # A transcription's job id, chosen before the job exists; blank for a stored answer.
    job_ref = models.CharField(max_length=32, blank=True)
    # The stored answer (blank while the first request runs): its status and encrypted JSON body.
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    answer = models.BinaryField(null=True, blank=True)

    class Meta:
        constraints = [
            # The database decides which of concurrent requests with one key runs.
            models.UniqueConstraint(fields=["scope", "key_hash"], name="one_request_per_idempotency_key"),
        ]

    def __str__(self):
        return f"{self.scope} {self.key_hash[:12]}"

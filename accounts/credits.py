"""Pool credits: every change is a ledger row, and the balance is their sum.

Holds work like a card payment: routing a pool_credit job reserves (debits) the
clip's seconds at once so they cannot be spent twice; success settles the hold
with a zero row, failure refunds it. Callers serialise per key by locking the
key row (`lock_key`) before reading the balance.
"""
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, CreditEntry

Kind = CreditEntry.Kind
# Every transcription reads and writes the ledger, so these are plain SQL that SQLite and
# PostgreSQL both speak: the ORM's query building costs ten times the query.
LEDGER = CreditEntry._meta.db_table


def seconds(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def lock_key(key: ApiKey) -> ApiKey:
    """Lock the key row until the transaction ends (SQLite's write lock is already the whole database)."""
    if connection.features.has_select_for_update:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {ApiKey._meta.db_table} WHERE id = %s FOR UPDATE", [key.pk])
            if cursor.fetchone() is None:
                raise ApiKey.DoesNotExist(f"No key {key.pk}.")
    return key


def credits_balance(key: ApiKey) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT SUM(seconds) FROM {LEDGER} WHERE key_id = %s", [key.pk])
        total = cursor.fetchone()[0]
    return seconds(total) if total is not None else Decimal("0")


def _add(*, key_id, kind, amount, job_ref="", reason=""):
    """Insert one ledger row; a second one per (job, kind) is silently skipped, so retries are safe."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LEDGER} (key_id, kind, seconds, job_ref, reason, actor, created_at)"
            f" VALUES (%s, %s, %s, %s, %s, '', %s) ON CONFLICT DO NOTHING",
            [key_id, kind, seconds(amount), job_ref, reason,
             connection.ops.adapt_datetimefield_value(timezone.now())],
        )


def credits_reserve(*, key: ApiKey, amount, job_ref: str) -> Decimal | None:
    """Hold `amount` seconds for a job if the balance covers it; returns the balance left, or None.

    Call with the key row locked.
    """
    amount = seconds(amount)
    balance = credits_balance(key)
    if balance < amount:
        return None
    _add(key_id=key.pk, kind=Kind.RESERVED, amount=-amount, job_ref=job_ref, reason="held for job")
    return balance - amount


def _open_hold(job_ref):
    """(key id, seconds held) of the job's reservation, unless it was already charged or refunded."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kind, key_id, seconds FROM {LEDGER} WHERE job_ref = %s", [job_ref])
        entries = {kind: (key_id, -seconds(amount)) for kind, key_id, amount in cursor.fetchall()}
    if Kind.RESERVED not in entries or Kind.CHARGED in entries or Kind.REFUNDED in entries:
        return None
    return entries[Kind.RESERVED]


def credits_settle(*, job_ref: str):
    """The job succeeded: the hold becomes the charge (a zero row: the hold already took the seconds).

    One statement, as every pool_credit job ends here: nothing happens without an open hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LEDGER} (key_id, kind, seconds, job_ref, reason, actor, created_at)"
            f" SELECT key_id, %s, 0, job_ref, 'charged the seconds held', '', %s FROM {LEDGER} hold"
            f" WHERE hold.job_ref = %s AND hold.kind = %s AND NOT EXISTS (SELECT 1 FROM {LEDGER} ended"
            f" WHERE ended.job_ref = hold.job_ref AND ended.kind IN (%s, %s)) ON CONFLICT DO NOTHING",
            [Kind.CHARGED, connection.ops.adapt_datetimefield_value(timezone.now()), job_ref, Kind.RESERVED,
             Kind.CHARGED, Kind.REFUNDED],
        )


def credits_refund(*, job_ref: str, reason: str):
    """The job failed or was cancelled: give the held seconds back."""
    hold = _open_hold(job_ref)
    if hold:
        key_id, held = hold
        _add(key_id=key_id, kind=Kind.REFUNDED, amount=held, job_ref=job_ref, reason=reason)


def credits_earn(*, key: ApiKey, amount, job_ref: str):
    _add(key_id=key.pk, kind=Kind.EARNED, amount=amount, job_ref=job_ref, reason="processed pool audio")


def credits_grant(*, key: ApiKey, amount, reason: str, actor: str = "") -> CreditEntry:
    """An operator's grant (positive) or deduction (negative); always with a reason."""
    if not reason.strip():
        raise ValueError("A grant needs a reason.")
    return CreditEntry.objects.create(key=key, kind=Kind.GRANTED, seconds=seconds(amount), reason=reason,
                                      actor=actor)

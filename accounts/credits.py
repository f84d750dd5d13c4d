"""Pool credits: every change is a ledger row, and the balance is their sum.

Holds work like a card payment: routing a pool_credit job reserves (debits) the
clip's seconds at once so they cannot be spent twice; success settles the hold
with a zero row, failure refunds it. Each row that moves seconds also moves the
key's CreditBalance in the same statement or transaction, and a hold is one
UPDATE guarded by the balance it needs, so concurrent requests of one key cannot
spend the same seconds twice.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts import statements as sql
from accounts.models import ApiKey, CreditBalance, CreditEntry
from jptranscribe.sql import db_datetime, run

Kind = CreditEntry.Kind


# --- Arithmetic: seconds to the millisecond, kept as whole milliseconds ----------------------------


def seconds(value: Decimal | float | int | str) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def milliseconds(value: Decimal | float | int | str) -> int:
    return int(seconds(value) * 1000)


def seconds_of(milliseconds_kept: int) -> Decimal:
    return seconds(Decimal(milliseconds_kept) / 1000)


def credits_missing(*, needed: Decimal | float, balance: Decimal) -> Decimal:
    """How many more seconds a clip needs than the balance holds (a negative balance counts as none)."""
    return seconds(needed) - max(balance, Decimal("0"))


# --- The ledger -----------------------------------------------------------------------------------


def lock_key(key: ApiKey) -> ApiKey:
    """Lock the key row until the transaction ends (SQLite's write lock is already the whole database).
    For callers that must serialise more than a hold, such as re-routing a job."""
    if connection.features.has_select_for_update:
        if not list(ApiKey.objects.select_for_update().filter(pk=key.pk).values_list("pk", flat=True)):
            raise ApiKey.DoesNotExist(f"No key {key.pk}.")
    return key


def credits_balance(key: ApiKey) -> Decimal:
    """The spendable balance: the key's kept balance (the ledger summed, kept in step)."""
    return balance_seconds(run(sql.BALANCE_OF, {"key_id": key.pk}).value("milliseconds"))


def balance_seconds(kept: int | None) -> Decimal:
    """A kept balance in seconds (a key without a ledger row yet has none)."""
    return seconds_of(kept) if kept is not None else Decimal("0")


def _now() -> datetime | str | None:
    return db_datetime(timezone.now())


def _add(*, key_id: int, kind: str, amount: Decimal | float, job_ref: str = "", reason: str = "") -> None:
    """Insert one ledger row and move the balance by it; a second row per (job, kind) is
    silently skipped, balance included, so retries are safe."""
    amount = seconds(amount)
    run(
        sql.ADD_ENTRY,
        {
            "key_id": key_id,
            "kind": kind,
            "seconds": amount,
            "job_ref": job_ref,
            "reason": reason,
            "now": _now(),
            "milliseconds": milliseconds(amount),
        },
    )


def credits_reserve(*, key: ApiKey, amount: Decimal | float, job_ref: str) -> Decimal | None:
    """Hold `amount` seconds for a job if the balance covers it; returns the balance left, or None."""
    amount = seconds(amount)
    left = run(
        sql.HOLD,
        {"key_id": key.pk, "milliseconds": milliseconds(amount), "seconds": -amount, "job_ref": job_ref, "now": _now()},
    ).value("milliseconds")
    return seconds_of(left) if left is not None else None


def _open_hold(job_ref: str) -> tuple[int, Decimal] | None:
    """(key id, seconds held) of the job's reservation, unless it was already charged or refunded."""
    entries = {
        kind: (key_id, -seconds(amount))
        for kind, key_id, amount in CreditEntry.objects.filter(job_ref=job_ref).values_list("kind", "key_id", "seconds")
    }
    if Kind.RESERVED not in entries or Kind.CHARGED in entries or Kind.REFUNDED in entries:
        return None
    return entries[Kind.RESERVED]


def credits_settle(*, job_ref: str) -> None:
    """The job succeeded: the hold becomes the charge. One statement, as every pool_credit job ends here."""
    run(sql.SETTLE, {"job_ref": job_ref, "now": _now()})


def credits_refund(*, job_ref: str, reason: str) -> None:
    """The job failed or was cancelled: give the held seconds back."""
    hold = _open_hold(job_ref)
    if hold:
        key_id, held = hold
        _add(key_id=key_id, kind=Kind.REFUNDED, amount=held, job_ref=job_ref, reason=reason)


def credits_earn_pending(*, key_id: int, amount: Decimal | float, job_ref: str) -> None:
    """Seconds earned for a pool result, spendable once it is confirmed (`credits_confirm`)."""
    amount = seconds(amount)
    run(
        sql.ADD_ENTRY,
        {
            "key_id": key_id,
            "kind": Kind.PENDING,
            "seconds": amount,
            "job_ref": job_ref,
            "reason": "processed pool audio (pending until confirmed)",
            "now": _now(),
            "milliseconds": 0,  # not in the balance
        },
    )


def _open_pending(job_ref: str) -> tuple[int, Decimal] | None:
    entries = {
        kind: (key_id, seconds(amount))
        for kind, key_id, amount in CreditEntry.objects.filter(
            job_ref=job_ref, kind__in=[Kind.PENDING, Kind.CONFIRMED, Kind.VOIDED]
        ).values_list("kind", "key_id", "seconds")
    }
    if Kind.PENDING not in entries or Kind.CONFIRMED in entries or Kind.VOIDED in entries:
        return None
    return entries[Kind.PENDING]


def credits_confirm(*, job_ref: str, reason: str = "result confirmed") -> None:
    """The pending seconds of this run become spendable (once: a second call does nothing)."""
    pending = _open_pending(job_ref)
    if pending:
        key_id, amount = pending
        _add(key_id=key_id, kind=Kind.CONFIRMED, amount=amount, job_ref=job_ref, reason=reason)


def credits_void(*, job_ref: str, reason: str) -> None:
    """A failed check: the run's pending seconds are never paid."""
    pending = _open_pending(job_ref)
    if pending:
        _add(key_id=pending[0], kind=Kind.VOIDED, amount=0, job_ref=job_ref, reason=reason)


def credits_confirm_held(*, older_than: datetime, limit: int = 1000) -> int:
    """Pending seconds older than the holding period, with no failed check, become spendable."""
    refs = list(
        CreditEntry.objects.filter(kind=Kind.PENDING, created_at__lt=older_than)
        .exclude(job_ref__in=CreditEntry.objects.filter(kind__in=[Kind.CONFIRMED, Kind.VOIDED]).values("job_ref"))
        .values_list("job_ref", flat=True)[:limit]
    )
    for job_ref in refs:
        with transaction.atomic():
            credits_confirm(job_ref=job_ref, reason="held without a failed check")
    return len(refs)


def credits_pending(key: ApiKey) -> Decimal:
    """Seconds earned and not yet confirmed or voided (statement `PENDING_OF`)."""
    return seconds(run(sql.PENDING_OF, {"key_id": key.pk}).value("seconds") or 0)


def credits_refund_charged(*, job_ref: str, reason: str) -> None:
    """A delivered result was outvoted later: the caller gets back what the job charged."""
    entries = {
        kind: (key_id, -seconds(amount))
        for kind, key_id, amount in CreditEntry.objects.filter(job_ref=job_ref).values_list("kind", "key_id", "seconds")
    }
    if Kind.RESERVED in entries and Kind.CHARGED in entries and Kind.REFUNDED not in entries:
        key_id, held = entries[Kind.RESERVED]
        _add(key_id=key_id, kind=Kind.REFUNDED, amount=held, job_ref=job_ref, reason=reason)


# The most one grant or deduction moves: ten years of audio (365-day years). A larger figure is a
# typo (and 1e30 would not fit the ledger's column).
MAX_GRANT_SECONDS = Decimal(10 * 365 * 86400)


def credits_grant(*, key: ApiKey, amount: Decimal | float, reason: str, actor: str = "") -> CreditEntry:
    """An operator's grant (positive) or deduction (negative); always with a reason.

    Refused with ValueError (the message says why, for the operator): no reason; an amount that is
    not a finite number, rounds to 0 ms, or moves more than MAX_GRANT_SECONDS; a deduction larger
    than the spendable balance (a negative balance would show as negative credits, and holds never
    take more than there is). The balance row is locked while it is compared, so a hold running
    meanwhile cannot make a deduction overdraw it."""
    if not reason.strip():
        raise ValueError("A grant needs a reason.")
    value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    if not value.is_finite():
        raise ValueError(f"The seconds must be a finite number, not {amount}.")
    if abs(value) > MAX_GRANT_SECONDS:
        raise ValueError(
            f"{float(value):g} s is more than one grant or deduction may move ({MAX_GRANT_SECONDS:,} s, ten years)."
        )
    value = seconds(value)
    if not value:
        raise ValueError("A grant of 0 s changes nothing; give a number of seconds (negative to deduct).")
    with transaction.atomic():
        if value < 0:
            run(sql.BALANCE_ADD, {"key_id": key.pk, "milliseconds": 0})  # the row exists, and is locked
            spendable = max(credits_balance(key), Decimal("0"))
            if spendable + value < 0:
                raise ValueError(
                    f"The key has {float(spendable):g} s spendable: at most {float(spendable):g} s can be deducted, "
                    f"not {float(-value):g} s."
                )
        entry = CreditEntry.objects.create(key=key, kind=Kind.GRANTED, seconds=value, reason=reason, actor=actor)
        run(sql.BALANCE_ADD, {"key_id": key.pk, "milliseconds": milliseconds(value)})
    return entry


def credits_reconcile(*, repair: bool) -> list[tuple[int, Decimal, Decimal]]:
    """Keys whose kept balance differs from their ledger: (key id, kept, ledger), repaired if asked.

    For a rolling deploy across the migration that added the kept balance (servers still on the
    old code write ledger rows only), or any doubt. Each key is fixed with its balance row
    locked, and the ledger summed after the lock, so writes running meanwhile are not lost."""
    key_ids = sorted(
        set(CreditEntry.objects.values_list("key_id", flat=True))
        | set(CreditBalance.objects.values_list("key_id", flat=True))
    )
    differing = []
    for key_id in key_ids:
        with transaction.atomic():
            run(sql.BALANCE_ADD, {"key_id": key_id, "milliseconds": 0})  # the row exists, and is locked
            kept = CreditBalance.objects.get(key_id=key_id).milliseconds
            ledger = milliseconds(
                CreditEntry.objects.filter(key_id=key_id)
                .exclude(kind__in=CreditEntry.NOT_IN_BALANCE)
                .aggregate(total=Sum("seconds"))["total"]
                or 0
            )
            if kept != ledger:
                differing.append((key_id, seconds_of(kept), seconds_of(ledger)))
                if repair:
                    CreditBalance.objects.filter(key_id=key_id).update(milliseconds=ledger)
    return differing

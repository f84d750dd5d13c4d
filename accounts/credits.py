"""Pool credits: every change is a ledger row, and the balance is their sum.

Holds work like a card payment: routing a pool_credit job reserves (debits) the
clip's seconds at once so they cannot be spent twice; success settles the hold
with a zero row, failure refunds it. Callers serialise per key by locking the
key row (`lock_key`) before reading the balance.
"""
from decimal import ROUND_HALF_UP, Decimal

from accounts.models import ApiKey, CreditEntry

Kind = CreditEntry.Kind


def seconds(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def lock_key(key: ApiKey) -> ApiKey:
    return ApiKey.objects.select_for_update().get(pk=key.pk)


def credits_balance(key: ApiKey) -> Decimal:
    return key.credit_balance()


def _add(**fields):
    """Insert one ledger row; a second one per (job, kind) is silently skipped, so retries are safe."""
    CreditEntry.objects.bulk_create([CreditEntry(**fields)], ignore_conflicts=True)


def credits_reserve(*, key: ApiKey, amount, job_ref: str) -> Decimal | None:
    """Hold `amount` seconds for a job if the balance covers it; returns the balance left, or None.

    Call with the key row locked.
    """
    amount = seconds(amount)
    balance = credits_balance(key)
    if balance < amount:
        return None
    _add(key=key, kind=Kind.RESERVED, seconds=-amount, job_ref=job_ref, reason="held for job")
    return balance - amount


def _open_hold(job_ref):
    """The job's reservation, unless it was already charged or refunded."""
    entries = {entry.kind: entry for entry in CreditEntry.objects.filter(job_ref=job_ref)}
    if Kind.RESERVED not in entries or Kind.CHARGED in entries or Kind.REFUNDED in entries:
        return None
    return entries[Kind.RESERVED]


def credits_settle(*, job_ref: str):
    """The job succeeded: the hold becomes the charge."""
    hold = _open_hold(job_ref)
    if hold:
        _add(key_id=hold.key_id, kind=Kind.CHARGED, seconds=Decimal("0"), job_ref=job_ref,
             reason=f"charged {-hold.seconds} s")


def credits_refund(*, job_ref: str, reason: str):
    """The job failed or was cancelled: give the held seconds back."""
    hold = _open_hold(job_ref)
    if hold:
        _add(key_id=hold.key_id, kind=Kind.REFUNDED, seconds=-hold.seconds, job_ref=job_ref, reason=reason)


def credits_earn(*, key: ApiKey, amount, job_ref: str):
    _add(key=key, kind=Kind.EARNED, seconds=seconds(amount), job_ref=job_ref, reason="processed pool audio")


def credits_grant(*, key: ApiKey, amount, reason: str, actor: str = "") -> CreditEntry:
    """An operator's grant (positive) or deduction (negative); always with a reason."""
    if not reason.strip():
        raise ValueError("A grant needs a reason.")
    return CreditEntry.objects.create(key=key, kind=Kind.GRANTED, seconds=seconds(amount), reason=reason,
                                      actor=actor)

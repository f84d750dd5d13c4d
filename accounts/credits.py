"""Pool credits: every change is a ledger row, and the balance is their sum.

Holds work like a card payment: routing a pool_credit job reserves (debits) the
clip's seconds at once so they cannot be spent twice; success settles the hold
with a zero row, failure refunds it. Callers serialise per key by locking the
key row (`lock_key`) before reading the balance.
"""
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction

from accounts.models import ApiKey, CreditEntry

Kind = CreditEntry.Kind


def seconds(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def lock_key(key: ApiKey) -> ApiKey:
    return ApiKey.objects.select_for_update().get(pk=key.pk)


def credits_balance(key: ApiKey) -> Decimal:
    return key.credit_balance()


def _add(**fields):
    """Insert one ledger row; a duplicate per (job, kind) is a no-op, which makes retries safe."""
    try:
        with transaction.atomic():
            return CreditEntry.objects.create(**fields)
    except IntegrityError:
        return None


def credits_reserve(*, key: ApiKey, amount, job_ref: str) -> bool:
    """Hold `amount` seconds for a job if the balance covers it. Call with the key row locked."""
    amount = seconds(amount)
    if credits_balance(key) < amount:
        return False
    _add(key=key, kind=Kind.RESERVED, seconds=-amount, job_ref=job_ref, reason="held for job")
    return True


def _open_hold(job_ref):
    kinds = set(CreditEntry.objects.filter(job_ref=job_ref).values_list("kind", flat=True))
    if Kind.RESERVED not in kinds or kinds & {Kind.CHARGED, Kind.REFUNDED}:
        return None
    return CreditEntry.objects.get(job_ref=job_ref, kind=Kind.RESERVED)


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

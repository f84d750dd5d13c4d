"""Pool credits: every change is a ledger row, and the balance is their sum.

Holds work like a card payment: routing a pool_credit job reserves (debits) the
clip's seconds at once so they cannot be spent twice; success settles the hold
with a zero row, failure refunds it. Each row that moves seconds also moves the
key's CreditBalance in the same statement or transaction, and a hold is one
UPDATE guarded by the balance it needs, so concurrent requests of one key cannot
spend the same seconds twice.
"""
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ApiKey, CreditBalance, CreditEntry

Kind = CreditEntry.Kind
# Every transcription reads and writes the ledger, so these are plain SQL that SQLite and
# PostgreSQL both speak: the ORM's query building costs ten times the query.
LEDGER = CreditEntry._meta.db_table
BALANCE = CreditBalance._meta.db_table
LEDGER_COLUMNS = "key_id, kind, seconds, job_ref, reason, actor, created_at"
# Adds a ledger row's seconds to its key's balance, creating the balance at the key's first row.
BALANCE_ADD = (f"INSERT INTO {BALANCE} (key_id, milliseconds) {{rows}}"
               f" ON CONFLICT (key_id) DO UPDATE SET milliseconds = {BALANCE}.milliseconds + excluded.milliseconds")


def seconds(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def milliseconds(value) -> int:
    return int(seconds(value) * 1000)


def _seconds_of(milliseconds_kept: int) -> Decimal:
    return seconds(Decimal(milliseconds_kept) / 1000)


def lock_key(key: ApiKey) -> ApiKey:
    """Lock the key row until the transaction ends (SQLite's write lock is already the whole database).
    For callers that must serialise more than a hold, such as re-routing a job."""
    if connection.features.has_select_for_update:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {ApiKey._meta.db_table} WHERE id = %s FOR UPDATE", [key.pk])
            if cursor.fetchone() is None:
                raise ApiKey.DoesNotExist(f"No key {key.pk}.")
    return key


def credits_balance(key: ApiKey) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT milliseconds FROM {BALANCE} WHERE key_id = %s", [key.pk])
        row = cursor.fetchone()
    return _seconds_of(row[0]) if row is not None else Decimal("0")


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _add(*, key_id, kind, amount, job_ref="", reason=""):
    """Insert one ledger row and move the balance by it; a second row per (job, kind) is
    silently skipped, balance included, so retries are safe."""
    amount = seconds(amount)
    insert = (f"INSERT INTO {LEDGER} ({LEDGER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, '', %s)"
              f" ON CONFLICT DO NOTHING")
    params = [key_id, kind, amount, job_ref, reason, _now()]
    with connection.cursor() as cursor:
        if not amount:
            cursor.execute(insert, params)
        elif connection.vendor == "postgresql":  # one statement, one round trip
            cursor.execute(f"WITH entry AS ({insert} RETURNING key_id) "
                           + BALANCE_ADD.format(rows="SELECT key_id, %s FROM entry"), [*params, milliseconds(amount)])
        else:
            cursor.execute(insert, params)
            if cursor.rowcount == 1:
                cursor.execute(BALANCE_ADD.format(rows="VALUES (%s, %s)"), [key_id, milliseconds(amount)])


def credits_reserve(*, key: ApiKey, amount, job_ref: str) -> Decimal | None:
    """Hold `amount` seconds for a job if the balance covers it; returns the balance left, or None.

    The guarded UPDATE takes the balance row's lock and re-reads it, so a concurrent hold
    waits for this one and then sees what it left."""
    amount = seconds(amount)
    hold = (f"UPDATE {BALANCE} SET milliseconds = milliseconds - %s WHERE key_id = %s AND milliseconds >= %s"
            f" RETURNING milliseconds")
    hold_params = [milliseconds(amount), key.pk, milliseconds(amount)]
    # No ON CONFLICT: a second hold for one job is a bug, and must not take seconds without its row.
    entry = f"INSERT INTO {LEDGER} ({LEDGER_COLUMNS}) SELECT %s, %s, %s, %s, 'held for job', '', %s"
    entry_params = [key.pk, Kind.RESERVED, -amount, job_ref, _now()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH held AS ({hold}), entry AS ({entry} FROM held) SELECT milliseconds FROM held",
                           [*hold_params, *entry_params])
            row = cursor.fetchone()
        else:
            cursor.execute(hold, hold_params)
            row = cursor.fetchone()
            if row is not None:
                cursor.execute(entry, entry_params)
    return _seconds_of(row[0]) if row is not None else None


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
            f"INSERT INTO {LEDGER} ({LEDGER_COLUMNS})"
            f" SELECT key_id, %s, 0, job_ref, 'charged the seconds held', '', %s FROM {LEDGER} hold"
            f" WHERE hold.job_ref = %s AND hold.kind = %s AND NOT EXISTS (SELECT 1 FROM {LEDGER} ended"
            f" WHERE ended.job_ref = hold.job_ref AND ended.kind IN (%s, %s)) ON CONFLICT DO NOTHING",
            [Kind.CHARGED, _now(), job_ref, Kind.RESERVED, Kind.CHARGED, Kind.REFUNDED],
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
    with transaction.atomic():
        entry = CreditEntry.objects.create(key=key, kind=Kind.GRANTED, seconds=seconds(amount), reason=reason,
                                           actor=actor)
        with connection.cursor() as cursor:
            cursor.execute(BALANCE_ADD.format(rows="VALUES (%s, %s)"), [key.pk, milliseconds(amount)])
    return entry


def credits_reconcile(*, repair: bool) -> list[tuple[int, Decimal, Decimal]]:
    """Keys whose kept balance differs from their ledger: (key id, kept, ledger), repaired if asked.

    For a rolling deploy across the migration that added the kept balance (servers still on the
    old code write ledger rows only), or any doubt. Each key is fixed with its balance row
    locked, and the ledger summed after the lock, so writes running meanwhile are not lost."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key_id FROM {LEDGER} UNION SELECT key_id FROM {BALANCE}")
        key_ids = sorted(row[0] for row in cursor.fetchall())
    differing = []
    for key_id in key_ids:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BALANCE_ADD.format(rows="VALUES (%s, 0)"), [key_id])  # exists and is locked
            cursor.execute(f"SELECT milliseconds FROM {BALANCE} WHERE key_id = %s", [key_id])
            kept = cursor.fetchone()[0]
            cursor.execute(f"SELECT COALESCE(SUM(seconds), 0) FROM {LEDGER} WHERE key_id = %s", [key_id])
            ledger = milliseconds(cursor.fetchone()[0])
            if kept != ledger:
                differing.append((key_id, _seconds_of(kept), _seconds_of(ledger)))
                if repair:
                    cursor.execute(f"UPDATE {BALANCE} SET milliseconds = %s WHERE key_id = %s", [ledger, key_id])
    return differing

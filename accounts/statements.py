"""The credits ledger's hot path in SQL: every pool_credit job holds, settles or refunds, and
every completed pool job earns. Each operation once, with named parameters; SQLite's steps
beside PostgreSQL's single statement where they differ (see `jptranscribe.sql.Statement`)."""

from __future__ import annotations

from accounts.models import CreditBalance, CreditEntry
from jptranscribe.sql import Statement, literal, table

LEDGER, BALANCE = table(CreditEntry), table(CreditBalance)
RESERVED, CHARGED, REFUNDED = (
    literal(k) for k in (CreditEntry.Kind.RESERVED, CreditEntry.Kind.CHARGED, CreditEntry.Kind.REFUNDED)
)
_ENTRY = f"INSERT INTO {LEDGER} (key_id, kind, seconds, job_ref, reason, actor, created_at)"
# A ledger row's seconds join its key's kept balance; the balance row is made at the key's first row.
_BALANCE_ADD = (
    f"INSERT INTO {BALANCE} (key_id, milliseconds) {{rows}} ON CONFLICT (key_id)"
    f" DO UPDATE SET milliseconds = {BALANCE}.milliseconds + excluded.milliseconds"
)


def _balance_add(rows: str) -> str:
    return _BALANCE_ADD.format(rows=rows)


BALANCE_OF = Statement("balance_of", f"SELECT milliseconds FROM {BALANCE} WHERE key_id = %(key_id)s")

# One row per (job, kind) at most: a second one is skipped, balance included, so retries are safe.
ADD_ENTRY = Statement(
    "add_entry",
    f"WITH entry AS ({_ENTRY} VALUES (%(key_id)s, %(kind)s, %(seconds)s, %(job_ref)s, %(reason)s, '', %(now)s)"
    f" ON CONFLICT DO NOTHING RETURNING key_id) {_balance_add('SELECT key_id, %(milliseconds)s FROM entry')}",
    sqlite_steps=(
        f"{_ENTRY} VALUES (%(key_id)s, %(kind)s, %(seconds)s, %(job_ref)s, %(reason)s, '', %(now)s) ON CONFLICT DO NOTHING",
        _balance_add("VALUES (%(key_id)s, %(milliseconds)s)"),
    ),
)
# A grant always adds its row (grants have no job), so only the balance is SQL here.
BALANCE_ADD = Statement("balance_add", _balance_add("VALUES (%(key_id)s, %(milliseconds)s)"))

# The guarded UPDATE takes the balance row's lock and re-reads it, so a concurrent hold waits for
# this one and then sees what it left. No ON CONFLICT on the entry: a second hold for one job is a
# bug, and must not take seconds without its row.
_HOLD = (
    f"UPDATE {BALANCE} SET milliseconds = milliseconds - %(milliseconds)s"
    f" WHERE key_id = %(key_id)s AND milliseconds >= %(milliseconds)s RETURNING milliseconds"
)
_HOLD_ENTRY = f"{_ENTRY} SELECT %(key_id)s, {RESERVED}, %(seconds)s, %(job_ref)s, 'held for job', '', %(now)s"
HOLD = Statement(
    "hold",
    f"WITH held AS ({_HOLD}), entry AS ({_HOLD_ENTRY} FROM held) SELECT milliseconds FROM held",
    sqlite_steps=(_HOLD, _HOLD_ENTRY),
)

# The job succeeded: the hold becomes the charge, a zero row (the hold already took the seconds).
# Nothing happens without an open hold.
SETTLE = Statement(
    "settle",
    f"{_ENTRY} SELECT key_id, {CHARGED}, 0, job_ref, 'charged the seconds held', '', %(now)s FROM {LEDGER} hold"
    f" WHERE hold.job_ref = %(job_ref)s AND hold.kind = {RESERVED} AND NOT EXISTS (SELECT 1 FROM {LEDGER} ended"
    f" WHERE ended.job_ref = hold.job_ref AND ended.kind IN ({CHARGED}, {REFUNDED})) ON CONFLICT DO NOTHING",
)

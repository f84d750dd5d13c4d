"""The credits ledger's hot path in SQL: every pool_credit job holds, settles or refunds, and
every completed pool job earns. Each operation once, with named parameters; SQLite's steps
beside PostgreSQL's single statement where they differ (see `jptranscribe.sql.Statement`)."""

from __future__ import annotations

from accounts.models import CreditBalance, CreditEntry, DailyQuota
from jptranscribe.sql import Statement, literal, table

LEDGER, BALANCE, QUOTA = table(CreditEntry), table(CreditBalance), table(DailyQuota)
RESERVED, CHARGED, REFUNDED = (
    literal(k) for k in (CreditEntry.Kind.RESERVED, CreditEntry.Kind.CHARGED, CreditEntry.Kind.REFUNDED)
)
PENDING, CONFIRMED, VOIDED = (
    literal(k) for k in (CreditEntry.Kind.PENDING, CreditEntry.Kind.CONFIRMED, CreditEntry.Kind.VOIDED)
)
_ENTRY = f"INSERT INTO {LEDGER} (key_id, kind, seconds, job_ref, reason, actor, created_at)"
# A ledger row's seconds join its key's kept balance; the balance row is made at the key's first row.
_BALANCE_ADD = (
    f"INSERT INTO {BALANCE} (key_id, milliseconds) {{rows}} ON CONFLICT (key_id)"
    f" DO UPDATE SET milliseconds = {BALANCE}.milliseconds + excluded.milliseconds"
)


def _balance_add(rows: str) -> str:
    return _BALANCE_ADD.format(rows=rows)


_BALANCE_OF = f"SELECT milliseconds FROM {BALANCE} WHERE key_id = %(key_id)s"
BALANCE_OF = Statement("balance_of", _BALANCE_OF)

# Earnings still pending: the key's pending rows whose job has no confirmed or voided row of the key.
_PENDING_OF = (
    f"SELECT COALESCE(SUM(p.seconds), 0) FROM {LEDGER} p WHERE p.key_id = %(key_id)s AND p.kind = {PENDING}"
    f" AND NOT EXISTS (SELECT 1 FROM {LEDGER} c WHERE c.key_id = %(key_id)s AND c.job_ref = p.job_ref"
    f" AND c.kind IN ({CONFIRMED}, {VOIDED}))"
)
PENDING_OF = Statement("pending_of", f"SELECT ({_PENDING_OF}) AS seconds")

_QUOTA_USED = f"SELECT used FROM {QUOTA} WHERE scope = %(scope)s AND subject = %(subject)s AND day = %(day)s"

# What /v1/account shows of the accounts app, in one round trip: the balance, the pending
# earnings, and the day's use of a quota (the caller's demos).
ACCOUNT_FIGURES = Statement(
    "account_figures",
    f"SELECT ({_BALANCE_OF}) AS milliseconds, ({_PENDING_OF}) AS pending_seconds, ({_QUOTA_USED}) AS quota_used",
)

# One row per (job, kind) at most: a second one is skipped, balance included, so retries are safe.
# A row that moves no spendable seconds (pending, voided) leaves the balance row alone: a pool
# result's completion then locks no balance, and two checks settling at once lock only the rows
# they confirm (in key order: `pool.verification`), so they cannot deadlock on each other's.
ADD_ENTRY = Statement(
    "add_entry",
    f"WITH entry AS ({_ENTRY} VALUES (%(key_id)s, %(kind)s, %(seconds)s, %(job_ref)s, %(reason)s, '', %(now)s)"
    f" ON CONFLICT DO NOTHING RETURNING key_id)"
    f" {_balance_add('SELECT key_id, %(milliseconds)s FROM entry WHERE %(milliseconds)s <> 0')}",
    sqlite_steps=(
        f"{_ENTRY} VALUES (%(key_id)s, %(kind)s, %(seconds)s, %(job_ref)s, %(reason)s, '', %(now)s) ON CONFLICT DO NOTHING",
        _balance_add("SELECT %(key_id)s, %(milliseconds)s WHERE %(milliseconds)s <> 0"),
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

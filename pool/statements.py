"""The pool's hot path in SQL: submitting, claiming, fetching audio, completing.

Each operation is written once, with named parameters; where SQLite needs steps for what
PostgreSQL does in one statement, they stand side by side (see `jptranscribe.sql.Statement`).
Status, route and outcome values come from the models' choices.

Every state change is guarded by the state it expects (`status = 'queued'`, `lease_id = …`),
so two servers or two threads can never both move one job.
"""

from __future__ import annotations

from accounts.models import ApiKey
from jptranscribe.sql import Statement, column_list, for_update, insert_values, literal, per_row, skip_locked, table
from pool.models import Job, JobAttempt, JobAudio, JobResult, KeyTrust, Worker

JOB, WORKER, ATTEMPT, AUDIO, KEY = table(Job), table(Worker), table(JobAttempt), table(JobAudio), table(ApiKey)
TRUST, RESULT = table(KeyTrust), table(JobResult)
JOB_COLUMNS = column_list(Job)
QUEUED, LEASED, COMPLETED = (literal(s) for s in (Job.Status.QUEUED, Job.Status.LEASED, Job.Status.COMPLETED))
POOL_SELF, POOL_CREDIT, SERVER_DEMO, POOL_CHECK = (
    literal(r) for r in (Job.Route.POOL_SELF, Job.Route.POOL_CREDIT, Job.Route.SERVER_DEMO, Job.Route.POOL_CHECK)
)
RUNNING, FAILED, EXPIRED = (
    literal(o) for o in (JobAttempt.Outcome.RUNNING, JobAttempt.Outcome.FAILED, JobAttempt.Outcome.EXPIRED)
)
# What a pool call needs of its worker; the other fields load when touched.
_WORKER_FIELDS = ("id", "key_id", "client_id", "model", "max_jobs", "session_id", "last_seen_at", "expires_at")
WORKER_COLUMNS = ", ".join(f"w.{column}" for column in (*_WORKER_FIELDS, "signed_off_at"))
WORKER_MAY_WORK = "w.signed_off_at IS NULL AND k.workers_banned_at IS NULL AND k.revoked_at IS NULL"


# --- Submitting: the job and its audio together ---------------------------------------------------

_INSERT_JOB = f"INSERT INTO {JOB} {insert_values(Job)} RETURNING {JOB_COLUMNS}"
_INSERT_AUDIO = f"INSERT INTO {AUDIO} (job_id, data, content_type)"

SUBMIT = Statement(
    "submit",
    f"WITH job AS ({_INSERT_JOB}), audio AS ({_INSERT_AUDIO} SELECT id, %(audio)s, %(content_type)s FROM job)"
    f" SELECT {JOB_COLUMNS} FROM job",
    sqlite_steps=(_INSERT_JOB, f"{_INSERT_AUDIO} VALUES (%(id)s, %(audio)s, %(content_type)s)"),
)

# --- Claiming: one UPDATE … RETURNING picks the best queued job and leases it ----------------------


def _lease(pick: str) -> str:
    """Lease the job `pick` chooses to the worker in the place `slot` (one of 1 to its `max_jobs`),
    unless it signed off, or its key was banned or revoked, while its long-poll was open.

    A place holds one job (a unique index): a claim for a taken place fails, and the caller tries
    another. On PostgreSQL the pick skips rows another claimer holds; SQLite serialises writers
    anyway."""
    return (
        f"UPDATE {JOB} SET status = {LEASED}, worker_id = %(worker_pk)s, lease_id = %(lease_id)s,"
        f" lease_expires_at = %(lease_expires_at)s, lease_hard_expires_at = %(lease_hard_expires_at)s,"
        f" worker_slot = %(slot)s, attempts = attempts + 1"
        f" WHERE id = ({pick}{skip_locked()}) AND status = {QUEUED}"
        f" AND EXISTS (SELECT 1 FROM {WORKER} w JOIN {KEY} k ON k.id = w.key_id"
        f" WHERE w.id = %(worker_pk)s AND {WORKER_MAY_WORK})"
        f" RETURNING {JOB_COLUMNS}"
    )


def _start_attempt(job_id: str) -> str:
    """The attempt row, noting whether the claim's answer carries the clip (see `_inline_audio`)."""
    return (
        f"INSERT INTO {ATTEMPT} (job_id, worker_id, lease_id, started_at, outcome, error, audio_inline,"
        f" audio_fetched) SELECT id, %(worker_pk)s, %(lease_id)s, %(now)s, {RUNNING}, '',"
        f" %(inline_audio_up_to)s > 0 AND EXISTS (SELECT 1 FROM {AUDIO} WHERE job_id = {job_id}"
        f" AND length(data) <= %(inline_audio_up_to)s), FALSE"
    )


def _inline_audio(job_id: str) -> str:
    """The clip itself when the worker asked for it and it is small enough: a round trip saved per job."""
    return (
        f"CASE WHEN %(inline_audio_up_to)s > 0 THEN (SELECT data FROM {AUDIO}"
        f" WHERE job_id = {job_id} AND length(data) <= %(inline_audio_up_to)s) END AS inline_audio"
    )


# The worker's key's record as `pool.verification.trust_seen` takes it (no row: a new key), read
# in the statements that need it so that a claim or a completion costs no query of its own.
_TRUST_COLUMNS = (
    f"COALESCE((SELECT t.consecutive_agreements FROM {TRUST} t WHERE t.key_id = %(worker_key_id)s), 0)"
    f" AS trust_consecutive, EXISTS (SELECT 1 FROM {TRUST} t WHERE t.key_id = %(worker_key_id)s"
    f" AND t.quarantined_at IS NOT NULL) AS trust_quarantined"
)


def _claim(name: str, pick: str) -> Statement:
    return Statement(
        name,
        f"WITH claimed AS ({_lease(pick)}), attempt AS ({_start_attempt('claimed.id')} FROM claimed)"
        f" SELECT {JOB_COLUMNS}, {_inline_audio('claimed.id')}, {_TRUST_COLUMNS} FROM claimed",
        sqlite_steps=(
            _lease(pick),
            f"{_start_attempt(f'{JOB}.id')} FROM {JOB} WHERE id = %(id)s",
            f"SELECT {_inline_audio('%(id)s')}, {_TRUST_COLUMNS}",
        ),
    )


def _by_key(attempt: str) -> str:
    """The attempt was made by a worker of the claiming key. Looked up per attempt, by the
    worker's primary key: the attempts are always found through the job, never through the key's
    whole history (which a plan made from stale statistics would otherwise drive from)."""
    return f"EXISTS (SELECT 1 FROM {WORKER} aw WHERE aw.id = {attempt}.worker_id AND aw.key_id = %(worker_key_id)s{per_row()})"


def _ran_by_key(original: str) -> str:
    """The worker's key already ran this clip: the original job or any check copy of it.

    Two lookups, not one with `x.id = … OR x.checks_id = …`: planned from stale statistics, the
    OR was a sequential scan of every job ever queued, once for each queued check a claim passed
    over (0.24 ms each after 1,000 jobs, growing with the table)."""
    return (
        f"(EXISTS (SELECT 1 FROM {ATTEMPT} a WHERE a.job_id = {original} AND {_by_key('a')}{per_row()})"
        f" OR EXISTS (SELECT 1 FROM {JOB} x JOIN {ATTEMPT} a ON a.job_id = x.id"
        f" WHERE x.checks_id = {original} AND {_by_key('a')}{per_row()}))"
    )


# The worker's key is trusted (or not quarantined): `pool.models.KeyTrust.level` in SQL.
_TRUSTED = (
    f"EXISTS (SELECT 1 FROM {TRUST} t WHERE t.key_id = %(worker_key_id)s AND t.quarantined_at IS NULL"
    f" AND t.consecutive_agreements >= {KeyTrust.TRUSTED_AFTER})"
)
_NOT_QUARANTINED = (
    f"NOT EXISTS (SELECT 1 FROM {TRUST} t WHERE t.key_id = %(worker_key_id)s AND t.quarantined_at IS NOT NULL)"
)

# The demo worker takes demo jobs, oldest first; when there are none, checks of pool results.
CLAIM_DEMO = _claim(
    "claim_demo",
    f"SELECT id FROM {JOB} j WHERE j.status = {QUEUED} AND (j.route = {SERVER_DEMO}"
    f" OR (j.route = {POOL_CHECK} AND NOT {_ran_by_key('j.checks_id')}))"
    f" ORDER BY CASE WHEN j.route = {SERVER_DEMO} THEN 0 ELSE 1 END, j.queued_at LIMIT 1",
)
# A volunteer's worker takes its own key's jobs first, then checks of pool results (a caller
# waits for them), then pool jobs, oldest first. Never a pool job that a worker of its key failed
# or let expire (worker ids cost nothing; keys are counted), nor a clip its key already ran for
# another check, nor a check of its own key's job; a check meant for a trusted key only if its key
# is, and any other check only once trusted keys had it to themselves for a while; nothing of
# others while quarantined.
CLAIM_POOL = _claim(
    "claim_pool",
    f"SELECT id FROM {JOB} j WHERE j.status = {QUEUED} AND ((j.route = {POOL_SELF} AND j.key_id = %(worker_key_id)s)"
    f" OR (j.route = {POOL_CREDIT} AND {_NOT_QUARANTINED} AND NOT EXISTS (SELECT 1 FROM {ATTEMPT} a"
    f" WHERE a.job_id = j.id AND a.outcome IN ({FAILED}, {EXPIRED}) AND {_by_key('a')}{per_row()})"
    f" AND NOT EXISTS (SELECT 1 FROM {JOB} x JOIN {ATTEMPT} a ON a.job_id = x.id"
    f" WHERE x.checks_id = j.id AND {_by_key('a')}{per_row()}))"
    f" OR (j.route = {POOL_CHECK} AND j.key_id <> %(worker_key_id)s AND {_NOT_QUARANTINED}"
    f" AND NOT {_ran_by_key('j.checks_id')}"
    f" AND ({_TRUSTED} OR (NOT j.check_by_trusted AND j.queued_at <= %(checks_open_before)s)))"
    f") ORDER BY CASE WHEN j.route = {POOL_SELF} THEN 0 WHEN j.route = {POOL_CHECK} THEN 1 ELSE 2 END,"
    f" j.queued_at LIMIT 1",
)

# --- Holding a job ---------------------------------------------------------------------------------


def _key_places(key_id: str) -> str:
    """How many jobs a key's online workers run at once: as many claims of the key may wait at a time."""
    return (
        f"(SELECT COALESCE(SUM(o.max_jobs), 0) FROM {WORKER} o WHERE o.key_id = {key_id}"
        f" AND o.signed_off_at IS NULL AND o.last_seen_at >= %(online_since)s)"
    )


# The worker, with how many jobs it holds (a claim with no place left is refused) and its key's
# places to wait.
WORKER_BY_CLIENT_ID = Statement(
    "worker_by_client_id",
    f"SELECT {WORKER_COLUMNS}, (SELECT count(*) FROM {JOB} h WHERE h.worker_id = w.id AND h.status = {LEASED})"
    f" AS held_jobs, {_key_places('w.key_id')} AS key_places"
    f" FROM {WORKER} w WHERE w.key_id = %(key_id)s AND w.client_id = %(client_id)s",
)
KEY_PLACES = Statement("key_places", f"SELECT {_key_places('%(key_id)s')} AS key_places")
# A heartbeat from a running worker process (each volunteer's, every 20 s): its registration
# renewed in one statement, as `pool.services.worker_heartbeat` does in a transaction. It matches
# nothing for a new worker or a new session (a restart): those take the full path.
HEARTBEAT = Statement(
    "heartbeat",
    f"UPDATE {WORKER} SET name = %(name)s, engine = %(engine)s, model = %(model)s, version = %(version)s,"
    f" max_jobs = %(max_jobs)s, last_seen_at = %(now)s, signed_off_at = NULL, expires_at = %(expires_at)s"
    f" WHERE key_id = %(key_id)s AND client_id = %(client_id)s AND session_id = %(session_id)s"
    f" RETURNING {', '.join(_WORKER_FIELDS)}, signed_off_at",
)
# Any pool call of a registered worker renews its registration as a heartbeat does: an idle worker's
# claims keep it registered, so it need not beat while it holds no job.
WORKER_SEEN = Statement(
    "worker_seen", f"UPDATE {WORKER} SET last_seen_at = %(now)s, expires_at = %(expires_at)s WHERE id = %(worker_pk)s"
)
JOB_BY_ID = Statement("job_by_id", f"SELECT {JOB_COLUMNS} FROM {JOB} WHERE id = %(job_id)s")
JOB_BY_ID_LOCKED = Statement("job_by_id_locked", f"{JOB_BY_ID.sql}{for_update()}")
# The audio of a leased job, found with the worker through the job in one query.
HELD_AUDIO = Statement(
    "held_audio",
    f"SELECT {WORKER_COLUMNS}, a.data, a.content_type FROM {AUDIO} a"
    f" JOIN {JOB} j ON j.id = a.job_id JOIN {WORKER} w ON w.id = j.worker_id"
    f" WHERE a.job_id = %(job_id)s AND j.lease_id = %(lease_id)s AND j.status = {LEASED}"
    f" AND w.key_id = %(key_id)s AND w.client_id = %(client_id)s",
)

# --- Ending an attempt, and completing -------------------------------------------------------------

_END_ATTEMPT = (
    f"UPDATE {ATTEMPT} SET outcome = %(outcome)s, ended_at = %(now)s, error = %(error)s"
    f" WHERE lease_id = %(lease_id)s AND outcome = {RUNNING}"
)
END_ATTEMPT = Statement("end_attempt", _END_ATTEMPT)

_FINISH = (
    f"UPDATE {JOB} SET status = {COMPLETED}, text = %(text)s, segments = %(segments)s, model = %(model)s,"
    f" finished_at = %(now)s, lease_expires_at = NULL"
    f" WHERE id = %(job_id)s AND worker_id = %(worker_pk)s AND lease_id = %(lease_id)s AND lease_id <> ''"
    f" AND status = {LEASED} AND length(%(text)s) <= duration_seconds * %(chars_per_second)s + %(chars_base)s"
    f" AND %(segments_chars)s <= duration_seconds * %(chars_per_second)s + %(chars_base)s"
    f" RETURNING {JOB_COLUMNS}"
)


def _count_done(duration: str) -> str:
    return (
        f"UPDATE {WORKER} SET jobs_done = jobs_done + 1, audio_seconds = {WORKER}.audio_seconds + {duration},"
        f" processing_seconds = {WORKER}.processing_seconds + %(processing_seconds)s"
    )


# Only the holder's call with its lease moves the job; its attempt, audio and the worker's figures
# go with it. A pool job's audio stays for its checks (pool.verification releases it). The answer
# carries what checking the result needs: how the attempt went and the worker key's record.
_ATTEMPT_COLUMNS = "started_at AS attempt_started_at, audio_inline, audio_fetched"
COMPLETE = Statement(
    "complete",
    f"WITH done AS ({_FINISH}), attempt AS ({_END_ATTEMPT} AND EXISTS (SELECT 1 FROM done)"
    f" RETURNING {_ATTEMPT_COLUMNS}),"
    f" audio AS (DELETE FROM {AUDIO} WHERE job_id IN (SELECT id FROM done WHERE route <> {POOL_CREDIT})),"
    f" counted AS ({_count_done('done.duration_seconds')} FROM done WHERE {WORKER}.id = %(worker_pk)s)"
    f" SELECT {JOB_COLUMNS}, (SELECT attempt_started_at FROM attempt) AS attempt_started_at,"
    f" (SELECT audio_inline FROM attempt) AS audio_inline, (SELECT audio_fetched FROM attempt) AS audio_fetched,"
    f" {_TRUST_COLUMNS} FROM done",
    sqlite_steps=(
        _FINISH,
        f"{_END_ATTEMPT} RETURNING {_ATTEMPT_COLUMNS}",
        f"DELETE FROM {AUDIO} WHERE job_id = %(job_id)s AND %(route)s <> {POOL_CREDIT}",
        f"{_count_done('%(duration_seconds)s')} WHERE id = %(worker_pk)s",
        f"SELECT {_TRUST_COLUMNS}",
    ),
)

# A delivered result's audio, unless a check copy still needs it (pool.verification).
RELEASE_AUDIO = Statement(
    "release_audio",
    f"DELETE FROM {AUDIO} WHERE job_id = %(job_id)s AND NOT EXISTS (SELECT 1 FROM {JOB}"
    f" WHERE checks_id = %(job_id)s AND status IN ({QUEUED}, {LEASED}))",
)
# A worker's transcript of a checked clip (pool.verification: `JobResult`).
RECORD_RESULT = Statement("record_result", f"INSERT INTO {RESULT} {insert_values(JobResult)}")

# A check copy's own audio (pool.verification).
COPY_AUDIO = Statement(
    "copy_audio",
    f"INSERT INTO {AUDIO} (job_id, data, content_type) SELECT %(copy_id)s, data, content_type FROM {AUDIO}"
    f" WHERE job_id = %(original_id)s",
)

# --- Routing's question: whose workers are online -------------------------------------------------

# Each an EXISTS that stops at the first online worker it finds, through the workers' (key, last
# seen) index: a count read every online worker, 5,000 rows on every submit with 5,000 volunteers
# waiting. PostgreSQL reads the demo's from the few server keys (accounts' key_server_idx), a
# worker each at most: joined plainly, it reads the workers in table order until it meets one.
# There WORKER_MAY_WORK is split between the key and its workers by hand: with the key joined in
# the LATERAL too, the planner walked the last-seen index over every online worker instead.
_OWN_WORKER_ONLINE = (
    f"EXISTS (SELECT 1 FROM {WORKER} w JOIN {KEY} k ON k.id = w.key_id"
    f" WHERE w.key_id = %(key_id)s AND w.last_seen_at >= %(since)s AND {WORKER_MAY_WORK}) AS own"
)
WORKERS_ONLINE = Statement(
    "workers_online",
    f"SELECT {_OWN_WORKER_ONLINE}, EXISTS (SELECT 1 FROM {KEY} k CROSS JOIN LATERAL"
    f" (SELECT 1 FROM {WORKER} w WHERE w.key_id = k.id AND w.last_seen_at >= %(since)s AND w.signed_off_at IS NULL"
    f" ORDER BY w.last_seen_at DESC LIMIT 1) w"
    f" WHERE k.is_server AND k.workers_banned_at IS NULL AND k.revoked_at IS NULL) AS demo",
    sqlite_steps=(
        f"SELECT {_OWN_WORKER_ONLINE}, EXISTS (SELECT 1 FROM {KEY} k JOIN {WORKER} w ON w.key_id = k.id"
        f" WHERE k.is_server AND w.last_seen_at >= %(since)s AND {WORKER_MAY_WORK}) AS demo",
    ),
)
# One key's online workers (for /v1/account): the same rule, over that key's workers only.
KEY_WORKERS_ONLINE = Statement(
    "key_workers_online",
    f"SELECT COUNT(*) AS online FROM {WORKER} w JOIN {KEY} k ON k.id = w.key_id"
    f" WHERE w.key_id = %(key_id)s AND w.last_seen_at >= %(since)s AND {WORKER_MAY_WORK}",
)

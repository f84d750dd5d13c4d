"""The hot path's plain SQL says the same as the ORM it stands in for."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts import credits
from accounts.models import ApiKey, CreditEntry
from pool import services as pool
from pool.models import Job, JobAttempt, JobAudio, Worker
from pool.workers import key_workers_online, worker_for_request, workers_online
from tests.clips import wav_bytes
from tests.helpers import claim_job, grant, online_worker

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def orm_online(key):
    online = Worker.objects.online()
    return online.filter(key=key).exists(), online.filter(key__is_server=True).exists()


def test_the_sql_online_rule_agrees_with_the_queryset():
    now = timezone.now()
    keys = {name: ApiKey.mint()[0] for name in ("own", "aged", "signed_off", "banned", "revoked", "nobody")}
    server = ApiKey.mint(is_server=True)[0]
    later = now + timedelta(minutes=15)
    for name in ("own", "aged", "signed_off", "banned", "revoked"):
        Worker.objects.create(key=keys[name], client_id="w", expires_at=later)
    Worker.objects.filter(key=keys["aged"]).update(last_seen_at=now - timedelta(seconds=91))
    Worker.objects.filter(key=keys["signed_off"]).update(signed_off_at=now)
    ApiKey.objects.filter(pk=keys["banned"].pk).update(workers_banned_at=now)
    ApiKey.objects.filter(pk=keys["revoked"].pk).update(revoked_at=now)
    for key in keys.values():
        assert workers_online(key) == orm_online(key) == (key == keys["own"], False)
    demo = Worker.objects.create(key=server, client_id="demo", expires_at=later)
    assert workers_online(keys["nobody"]) == orm_online(keys["nobody"]) == (False, True)
    Worker.objects.filter(pk=demo.pk).update(last_seen_at=now - timedelta(seconds=91))
    assert workers_online(server) == orm_online(server) == (False, False)


def test_a_keys_online_workers_are_counted_by_the_same_rule_in_sql():
    now = timezone.now()
    own, other = ApiKey.mint()[0], ApiKey.mint()[0]
    later = now + timedelta(minutes=15)
    for client_id in ("fresh", "fresher", "aged", "signed_off"):
        Worker.objects.create(key=own, client_id=client_id, expires_at=later)
    Worker.objects.create(key=other, client_id="fresh", expires_at=later)
    Worker.objects.filter(key=own, client_id="aged").update(last_seen_at=now - timedelta(seconds=91))
    Worker.objects.filter(key=own, client_id="signed_off").update(signed_off_at=now)
    assert key_workers_online(own) == Worker.objects.online().filter(key=own).count() == 2
    ApiKey.objects.filter(pk=own.pk).update(workers_banned_at=now)
    assert key_workers_online(own) == Worker.objects.online().filter(key=own).count() == 0


def test_a_worker_and_a_job_load_as_the_orm_loads_them():
    key = ApiKey.mint()[0]
    credits.credits_grant(key=key, amount=10, reason="test")
    worker = pool.worker_heartbeat(key=key, client_id="w1", model="m").worker
    loaded = worker_for_request(key=key, client_id="w1")
    stored = Worker.objects.get(pk=worker.pk)
    assert (loaded.pk, loaded.key_id, loaded.model, loaded.expires_at, loaded.last_seen_at) == (
        stored.pk, stored.key_id, stored.model, stored.expires_at, stored.last_seen_at)
    assert loaded.name == stored.name  # left out of the query: loaded on access
    job = pool.job_submit(key=key, route=Job.Route.POOL_SELF, route_reason="r", audio=b"RIFF", content_type="audio/wav",
                          audio_format="WAV", duration_seconds=1.25, translate=True, client_ip="192.0.2.1",
                          options={"prompt": "配信", "temperature": 0.5, "word_timestamps": True})
    fresh = pool.job_reload(job)
    orm = Job.objects.get(pk=job.pk)
    for field in Job._meta.concrete_fields:
        assert getattr(fresh, field.attname) == getattr(orm, field.attname), field.name
    assert fresh.duration_seconds == Decimal("1.250") and fresh.segments == [] and fresh.translate is True
    assert job.options == fresh.options == {"prompt": "配信", "temperature": 0.5, "word_timestamps": True}


def test_the_balance_is_the_sum_of_the_ledger():
    key = ApiKey.mint()[0]
    assert credits.credits_balance(key) == Decimal("0")
    for amount in (0.1, 0.2, 1000.333):
        credits.credits_grant(key=key, amount=amount, reason="test")
    credits.credits_reserve(key=key, amount=0.3, job_ref="tx_1")
    assert credits.credits_balance(key) == Decimal("1000.333")
    credits.credits_refund(job_ref="tx_1", reason="test")
    credits.credits_refund(job_ref="tx_1", reason="again")
    assert credits.credits_balance(key) == Decimal("1000.633")
    assert credits.credits_reserve(key=key, amount=1000.634, job_ref="tx_2") is None, "one millisecond short"
    assert credits.credits_reserve(key=key, amount=1000.633, job_ref="tx_3") == Decimal("0")
    assert credits.credits_balance(key) == Decimal("0")


def test_pending_earnings_in_sql_are_the_orms_sum_of_open_pending_rows():
    key, other = ApiKey.mint()[0], ApiKey.mint()[0]
    assert credits.credits_pending(key) == 0
    rows = [(key, "pending", "1.25", "tx_open"), (key, "pending", "2", "tx_confirmed"), (key, "confirmed", "2", "tx_confirmed"),
            (key, "pending", "0.5", "tx_voided"), (key, "voided", "0", "tx_voided"), (key, "pending", "0.001", "tx_also_open"),
            (other, "pending", "7", "tx_other"), (other, "confirmed", "1.25", "tx_open")]
    for owner, kind, amount, job_ref in rows:
        CreditEntry.objects.create(key=owner, kind=kind, seconds=Decimal(amount), job_ref=job_ref)
    closed = CreditEntry.objects.filter(kind__in=["confirmed", "voided"], key=key).values("job_ref")
    orm = CreditEntry.objects.filter(kind="pending", key=key).exclude(job_ref__in=closed).aggregate(s=Sum("seconds"))["s"]
    assert credits.credits_pending(key) == orm == Decimal("1.251")
    assert credits.credits_pending(other) == Decimal("7")


def test_a_claim_and_a_completion_record_everything_once(alice, bob):
    """Claiming and completing are single statements on PostgreSQL: the lease, its attempt, the
    audio, the worker's figures and the ledger all move with the job, and a repeat moves nothing."""
    grant(alice, 10)
    online_worker(bob)
    assert alice.transcribe(wav_bytes(2.5)).status_code == 202
    job = claim_job(bob)
    attempt = JobAttempt.objects.get(job_id=job["id"])
    assert (attempt.outcome, attempt.lease_id, attempt.worker.client_id) == ("running", job["lease_id"], "w1")

    for _ in range(2):
        response = bob.complete(job, processing_seconds=0.75)
        assert response.status_code == 200 and response.json()["credited_seconds"] == 2.5
    worker = Worker.objects.get(key=bob.key)
    assert (worker.jobs_done, worker.audio_seconds, worker.processing_seconds) == (1, 2.5, 0.75)
    assert JobAttempt.objects.get(job_id=job["id"]).outcome == "completed"
    assert not JobAudio.objects.filter(job_id=job["id"]).exists()
    ledger = sorted((e.key_id == alice.key.pk, e.kind, e.seconds) for e in CreditEntry.objects.filter(job_ref=job["id"]))
    assert ledger == [(False, "pending", Decimal("2.5")), (True, "charged", 0), (True, "reserved", Decimal("-2.5"))]
    assert (credits.credits_balance(alice.key), credits.credits_balance(bob.key)) == (Decimal("7.5"), 0)
    assert credits.credits_pending(bob.key) == Decimal("2.5")


class TestAudioInOneQuery:
    def test_the_holder_gets_the_audio_and_counts_as_seen(self, alice):
        clip = wav_bytes(1)
        online_worker(alice)
        alice.transcribe(clip)
        job = claim_job(alice)
        Worker.objects.update(last_seen_at=timezone.now() - timedelta(seconds=60))
        response = alice.audio(job)
        assert response.status_code == 200 and response.content == clip
        assert (timezone.now() - Worker.objects.get().last_seen_at).total_seconds() < 5

    def test_a_holder_whose_registration_ran_out_is_told_to_heartbeat(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        Worker.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = alice.audio(job)
        assert response.status_code == 409 and response.json()["error"]["code"] == "worker_not_registered"

    def test_a_banned_holder_gets_nothing(self, alice):
        online_worker(alice)
        alice.transcribe()
        job = claim_job(alice)
        ApiKey.objects.filter(pk=alice.key.pk).update(workers_banned_at=timezone.now())
        alice.key.forget_cached()
        assert alice.audio(job).json()["error"]["code"] == "worker_banned"


@pytest.mark.django_db(transaction=True)
def test_the_hot_statements_survive_a_migration_that_adds_a_column(settings):
    """A rolling deploy: a new release's migration adds a column while servers running the old
    code keep their pooled connections, on which psycopg has prepared the pool's statements."""
    from django.db import connection

    from tests.helpers import mint_caller

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    import psycopg

    from pool.wakeup import conninfo

    settings.JPT_RATE_USER = "1000/m"
    caller = online_worker(mint_caller())

    def cycle():
        submitted = caller.transcribe(wav_bytes(1))
        assert submitted.status_code == 202, submitted.json()
        job = claim_job(caller)
        assert caller.complete(job).status_code == 200
        assert caller.get(f"/v1/transcriptions/{job['id']}").json()["status"] == "completed"

    def alter(sql):
        with psycopg.connect(**conninfo(), autocommit=True) as other:
            other.execute(sql)

    for _ in range(12):  # past psycopg's prepare threshold on each pooled connection
        cycle()
    alter(f"ALTER TABLE {Job._meta.db_table} ADD COLUMN added_by_a_later_release integer")
    try:
        for _ in range(4):
            cycle()
    finally:
        alter(f"ALTER TABLE {Job._meta.db_table} DROP COLUMN added_by_a_later_release")


def volunteer_with_done_jobs(attempted: int):
    """A volunteer's key and worker, and 2,000 finished pool jobs of another key, the first
    `attempted` of them run by that worker: a history for the claim's plan to be planned over."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    key, owner = ApiKey.mint()[0], ApiKey.mint()[0]
    worker = pool.worker_heartbeat(key=key, client_id="w1").worker
    jobs = Job.objects.bulk_create(
        Job(key=owner, route=Job.Route.POOL_CREDIT, route_reason="r", status=Job.Status.COMPLETED, duration_seconds=1)
        for _ in range(2000)
    )
    JobAttempt.objects.bulk_create(
        JobAttempt(job=job, worker=worker, lease_id=f"l{i}", outcome=JobAttempt.Outcome.COMPLETED)
        for i, job in enumerate(jobs[:attempted])
    )
    return key, owner, worker, jobs


def claim_plan(key, worker, *before: str) -> str:
    """PostgreSQL's plan for this worker's claim, after the `before` statements (in the test's transaction)."""
    from django.db import connection

    from pool import statements as sql

    now = timezone.now()
    params = {"worker_pk": worker.pk, "worker_key_id": key.pk, "lease_id": "x", "lease_expires_at": now,
              "lease_hard_expires_at": now, "now": now, "inline_audio_up_to": 0, "checks_open_before": now, "slot": 1}
    with connection.cursor() as cursor:
        for statement in before:
            cursor.execute(statement)
        cursor.execute(f"EXPLAIN {sql.CLAIM_POOL.sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_claim_looks_up_a_volunteers_past_attempts_per_job_not_all_of_them():
    """A volunteer's claim must not get slower with every job it has done: PostgreSQL, with
    statistics from when the tables were small, hashed all of a key's attempts on every claim."""
    key, owner, worker, _ = volunteer_with_done_jobs(attempted=2000)
    Job.objects.create(key=owner, route=Job.Route.POOL_CREDIT, route_reason="r", duration_seconds=1)
    plan = claim_plan(key, worker)
    assert "hashed SubPlan" not in plan, plan


def test_a_claim_passing_over_checks_finds_a_clips_runs_through_indexes_not_every_job():
    """A queued check its key already ran is passed over: finding that run must not read every job
    ever queued. With statistics from when the tables were small, `x.id = … OR x.checks_id = …`
    was a sequential scan of the job table for each such check, on every claim."""
    key, owner, worker, originals = volunteer_with_done_jobs(attempted=10)
    Job.objects.bulk_create(
        Job(key=owner, route=Job.Route.POOL_CHECK, route_reason="r", checks=job, duration_seconds=1)
        for job in originals[:10]
    )
    # The OR could only be served by a bitmap of two indexes, which a planner that thinks the
    # table small passes over for a scan of it all; each lookup must stand on one index alone.
    plan = claim_plan(key, worker, "SET LOCAL enable_bitmapscan = off")
    assert f"Seq Scan on {Job._meta.db_table}" not in plan, plan


def test_a_jobs_writes_keep_no_index_another_covers_nor_a_pattern_copy():
    """A job is written three times (queued, leased, done), each write to every full index of its
    row; its attempt, audio and ledger rows once or twice. None of those tables keeps an index
    only LIKE 'x%' could use, and the job keeps three full ones: its id, its owner's listing, its
    worker."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("pattern copies and partial indexes are PostgreSQL's")
    tables = ["pool_job", "pool_jobattempt", "pool_jobaudio", "pool_jobresult", "accounts_creditentry"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [tables])
        indexes = cursor.fetchall()
    assert [name for _, name, definition in indexes if "pattern_ops" in definition] == []
    full_job_indexes = {
        name for table, name, definition in indexes if table == "pool_job" and " WHERE " not in definition
    }
    assert full_job_indexes == {"pool_job_pkey", "job_key_created_idx", "pool_job_worker_id_add727e2"}

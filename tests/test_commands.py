"""The operators' commands call the same services as the API."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from pool.models import Job, JobAudio
from tests.helpers import claim_job, grant, online_worker

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestCreditsCommand:
    def test_grant_by_prefix_shows_in_the_account(self, alice):
        output = run("credits", "grant", alice.raw_key[:12], "120", "--reason", "launch bonus")
        assert "balance 120 s" in output
        assert alice.get("/v1/account").json()["credits_seconds"] == 120.0

    def test_grant_by_full_key_and_deduct(self, alice):
        run("credits", "grant", alice.raw_key, "50", "--reason", "x")
        run("credits", "grant", alice.raw_key, "-20", "--reason", "abuse")
        assert alice.get("/v1/account").json()["credits_seconds"] == 30.0

    def test_show_lists_the_ledger(self, alice):
        run("credits", "grant", alice.raw_key, "50", "--reason", "launch bonus")
        output = run("credits", "show", alice.raw_key[:12])
        assert "balance 50 s" in output and "granted" in output and "launch bonus" in output

    @pytest.mark.postgres
    def test_reconcile_repairs_balances_that_differ_from_the_ledger(self, alice, bob):
        from accounts.models import CreditEntry

        run("credits", "grant", alice.raw_key, "50", "--reason", "x")
        run("credits", "grant", bob.raw_key, "7", "--reason", "x")
        # What a server still on the old code writes during a rolling upgrade: the ledger row alone.
        CreditEntry.objects.create(key=alice.key, kind="granted", seconds=-20, reason="old server")
        with pytest.raises(CommandError, match="differ from the ledger"):
            run("credits", "reconcile", "--check")
        assert alice.get("/v1/account").json()["credits_seconds"] == 50.0, "a check repairs nothing"
        output = run("credits", "reconcile")
        assert f"{alice.key.prefix}: kept 50 s, ledger 30 s (repaired)" in output and "1 balance(s) repaired" in output
        assert alice.get("/v1/account").json()["credits_seconds"] == 30.0
        assert bob.get("/v1/account").json()["credits_seconds"] == 7.0
        assert "0 balance(s) differ" in run("credits", "reconcile", "--check")

    def test_an_unknown_key_is_an_error(self, db):
        with pytest.raises(CommandError, match="No key matches"):
            run("credits", "show", "jpt_nothing1")

    def test_a_grant_needs_a_reason(self, alice):
        with pytest.raises(CommandError):
            run("credits", "grant", alice.raw_key, "5", "--reason", " ")

    @pytest.mark.parametrize(("seconds", "why"), [
        ("1e30", "ten years"), ("nan", "finite number"), ("inf", "finite number"), ("0", "changes nothing"),
    ])
    def test_a_grant_the_service_refuses_is_a_clean_error_that_changes_nothing(self, alice, seconds, why):
        """Each was a traceback (1e30, nan, inf) or a +0 ledger row (0)."""
        from accounts.models import CreditEntry

        with pytest.raises(CommandError, match=why):
            run("credits", "grant", alice.raw_key, seconds, "--reason", "x")
        assert not CreditEntry.objects.exists()

    def test_a_deduction_beyond_the_balance_says_how_much_can_be_taken(self, alice):
        """It left a 10 s balance at -90 s, shown as negative credits."""
        run("credits", "grant", alice.raw_key, "10", "--reason", "x")
        with pytest.raises(CommandError, match="at most 10 s can be deducted, not 100 s"):
            run("credits", "grant", alice.raw_key, "-100", "--reason", "abuse")
        assert alice.get("/v1/account").json()["credits_seconds"] == 10.0


class TestTrustCommand:
    def test_grant_makes_a_new_keys_results_arrive_at_once(self, alice, bob):
        grant(alice, 30)
        online_worker(bob, trusted=False)
        output = run("trust", "grant", bob.raw_key[:12])
        assert f"{bob.raw_key[:12]}: trusted" in output
        job_id = alice.transcribe().json()["id"]
        job = claim_job(bob)
        assert bob.complete(job, text="こんにちは").status_code == 200
        assert alice.get(f"/v1/transcriptions/{job_id}").json()["status"] == "completed", "not held for a check"

    def test_clear_lets_a_quarantined_keys_workers_take_others_jobs_again(self, alice, bob):
        from pool.verification import strike

        grant(alice, 30)
        online_worker(bob, trusted=False)
        for _ in range(3):
            strike(key_id=bob.key.pk, job=None, reason="outvoted (character error rate 0.97)")
        job_id = alice.transcribe().json()["id"]
        assert claim_job(bob) is None
        output = run("trust", "show", bob.raw_key)
        assert "quarantined" in output and "strikes 3, 3 standing in the last 24 h" in output
        assert output.count("outvoted (character error rate 0.97)") == 3
        assert ": quarantine cleared, its strikes with it; new (" in run("trust", "clear", bob.raw_key[:12])
        assert claim_job(bob)["id"] == job_id
        output = run("trust", "show", bob.raw_key)
        assert "strikes 3 (3 cleared by an operator), 0 standing in the last 24 h" in output
        assert output.count("(cleared 20") == 3

    def test_clear_on_a_key_that_is_not_quarantined_changes_nothing_and_says_so(self, bob):
        """It used to demote a trusted key to new."""
        run("trust", "grant", bob.raw_key)
        output = run("trust", "clear", bob.raw_key[:12])
        assert ": not quarantined, nothing changed; trusted (" in output
        assert ": trusted (" in run("trust", "show", bob.raw_key)

    def test_show_of_a_key_never_checked_says_new(self, alice):
        output = run("trust", "show", alice.raw_key[:12])
        assert ": new (" in output and "checks 0" in output and "strikes 0" in output

    def test_an_unknown_key_is_an_error(self, db):
        with pytest.raises(CommandError, match="No key matches"):
            run("trust", "grant", "jpt_nothing1")


def test_sweep_requeues_expired_leases_and_deletes_old_jobs(alice, settings):
    online_worker(alice)
    alice.transcribe()
    job = claim_job(alice)
    Job.objects.filter(pk=job["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    old = alice.transcribe().json()["id"]
    Job.objects.filter(pk=old).update(status="completed", finished_at=timezone.now() - timedelta(days=401))
    output = run("sweep")
    assert "leases expired: 1" in output and "old jobs deleted: 1" in output and "orphaned audio deleted: 1" in output
    assert Job.objects.get(pk=job["id"]).status == "queued"
    assert not Job.objects.filter(pk=old).exists()
    assert JobAudio.objects.count() == 1


def test_sweep_deletes_expired_browser_sessions(db):
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    for expiry in (-60, 3600):
        session = SessionStore()
        session["browser_jobs"] = ["tx_x"]
        session.set_expiry(timezone.now() + timedelta(seconds=expiry))
        session.save()
    assert "expired sessions deleted: 1" in run("sweep")
    assert Session.objects.count() == 1

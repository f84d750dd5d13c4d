"""The spec's routing table, first match wins, and what each route costs."""
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import CreditEntry
from pool.models import Job, Worker
from tests.clips import wav_bytes
from tests.helpers import Caller, claim_job, grant, mint_caller, online_worker

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def balance(caller):
    return caller.get("/v1/account").json()["credits_seconds"]


class TestRoutes:
    def test_own_worker_online_runs_on_it(self, alice, demo_worker):
        online_worker(alice)
        grant(alice, 100)
        body = alice.transcribe().json()
        assert body["processed_by"] == "self"
        assert body["route_reason"] == "Your worker is online — job runs on your CPU"
        assert balance(alice) == 100.0, "your own worker costs nothing"

    def test_no_worker_and_a_short_clip_uses_the_server_demo(self, alice, demo_worker):
        body = alice.transcribe(wav_bytes(30)).json()
        assert body["processed_by"] == "server_demo"
        assert "2 of 3 left today" in body["route_reason"]

    def test_demos_are_three_per_ip_per_day_then_credits(self, alice, demo_worker):
        grant(alice, 100)
        routes = [alice.transcribe().json()["processed_by"] for _ in range(4)]
        assert routes == ["server_demo", "server_demo", "server_demo", "pool"]
        # the same key from another address gets its own demos
        elsewhere = Caller(alice.raw_key, ip="192.0.2.200")
        assert elsewhere.transcribe().json()["processed_by"] == "server_demo"

    def test_the_demos_of_an_ipv6_network_are_shared_by_its_addresses(self, alice, demo_worker):
        grant(alice, 100)
        callers = [Caller(alice.raw_key, ip=f"2001:db8:7:7::{host}") for host in range(1, 5)]
        routes = [caller.transcribe().json()["processed_by"] for caller in callers]
        assert routes == ["server_demo", "server_demo", "server_demo", "pool"]

    def test_a_clip_over_30_seconds_skips_the_demo(self, alice, demo_worker):
        grant(alice, 100)
        body = alice.transcribe(wav_bytes(30.5)).json()
        assert body["processed_by"] == "pool"

    def test_no_demo_while_the_demo_worker_is_offline(self, alice):
        grant(alice, 100)
        assert alice.transcribe().json()["processed_by"] == "pool"

    def test_the_demo_worker_counts_among_many_volunteers_only_while_it_is_online(self, alice, demo_worker):
        for i in range(40):  # volunteers of other keys, online, seen after the demo worker
            assert mint_caller(ip=f"198.51.100.{100 + i}").heartbeat(f"v{i}").status_code == 200
        assert alice.transcribe().json()["processed_by"] == "server_demo"
        Worker.objects.filter(key=demo_worker.key).update(last_seen_at=timezone.now() - timedelta(seconds=91))
        grant(alice, 100)
        assert alice.transcribe().json()["processed_by"] == "pool"

    def test_credits_cover_the_clip_and_are_held_at_routing(self, alice, demo_worker):
        grant(alice, 45)
        body = alice.transcribe(wav_bytes(40)).json()
        assert body["processed_by"] == "pool"
        assert "40 s of pool credits used (5 s left)" in body["route_reason"]
        assert balance(alice) == 5.0

    def test_otherwise_403_worker_required_says_what_to_do(self, alice, demo_worker):
        grant(alice, 12.5)
        response = alice.transcribe(wav_bytes(40))
        assert response.status_code == 403
        err = response.json()["error"]
        assert err["code"] == "worker_required"
        assert "Run worker.py" in err["message"]
        assert "27.5 more seconds of pool credit" in err["message"]
        assert "up to 30 s" in err["message"]
        assert not Job.objects.exists() and balance(alice) == 12.5

    def test_403_after_the_demos_says_when_they_come_back(self, alice, demo_worker):
        for _ in range(3):
            alice.transcribe()
        message = alice.transcribe().json()["error"]["message"]
        assert "3 free server demos for today are used" in message and "00:00 UTC" in message

    def test_a_worker_seen_91_seconds_ago_does_not_count(self, alice, demo_worker):
        online_worker(alice)
        Worker.objects.filter(key=alice.key).update(last_seen_at=timezone.now() - timedelta(seconds=91))
        assert alice.transcribe().json()["processed_by"] == "server_demo"


class TestCredits:
    def test_a_pool_job_that_succeeds_is_charged_and_earns_the_worker_owner(self, alice, bob):
        grant(bob, 10)
        job_id = bob.transcribe().json()["id"]
        online_worker(alice)
        job = claim_job(alice)
        assert alice.complete(job).json()["credited_seconds"] == 3.0
        assert balance(bob) == 7.0
        assert balance(alice) == 0.0  # earned, pending until the result is confirmed
        assert alice.get("/v1/account").json()["credits_pending_seconds"] == 3.0
        kinds = list(CreditEntry.objects.filter(job_ref=job_id).order_by("id").values_list("kind", "seconds"))
        assert [(k, float(s)) for k, s in kinds] == [("reserved", -3.0), ("pending", 3.0), ("charged", 0.0)]

    def test_a_pool_job_that_fails_for_good_is_refunded(self, alice, bob, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        grant(bob, 10)
        bob.transcribe()
        online_worker(alice)
        alice.fail(claim_job(alice))
        assert balance(bob) == 10.0
        assert balance(alice) == 0.0

    def test_your_own_worker_taking_your_pool_job_makes_it_free_and_unchecked(self, alice):
        """Sent while no worker of the key was online (so paid from credits), then taken by the
        key's own worker: it is the key's own job after all, delivered at once and not charged."""
        grant(alice, 10)
        job_id = alice.transcribe().json()["id"]
        assert balance(alice) == 7.0  # held while the pool has it
        online_worker(alice)
        assert alice.complete(claim_job(alice)).json()["credited_seconds"] == 0.0
        assert balance(alice) == 10.0
        done = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert done["status"] == "completed" and done["processed_by"] == "self"
        assert not Job.objects.filter(checks_id=job_id).exists(), "no check of one's own job"

    def test_a_failed_demo_is_given_back(self, alice, demo_worker, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        alice.transcribe()
        demo_worker.fail(claim_job(demo_worker, "demo"), worker_id="demo")
        assert alice.get("/v1/account").json()["demos_left_today"] == 3

    def test_the_balance_always_equals_the_ledger(self, alice, bob):
        from django.db.models import Sum

        grant(bob, 20)
        for _ in range(3):
            bob.transcribe()
        online_worker(alice)
        alice.complete(claim_job(alice))
        alice.fail(claim_job(alice))
        for key in (alice.key, bob.key):
            ledger = CreditEntry.objects.filter(key=key).exclude(kind="pending").aggregate(s=Sum("seconds"))["s"] or 0
            assert float(ledger) == balance(Caller(alice.raw_key if key == alice.key else bob.raw_key))


class TestStrandedSelfJobs:
    def test_a_self_job_whose_worker_vanished_is_rerouted_to_the_demo(self, alice, demo_worker):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        Worker.objects.filter(key=alice.key).update(last_seen_at=timezone.now() - timedelta(seconds=91))
        body = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert body["status"] == "queued" and body["processed_by"] == "server_demo"
        assert claim_job(demo_worker, "demo")["id"] == job_id

    def test_with_nowhere_to_go_it_fails_with_a_clear_message(self, alice):
        online_worker(alice)
        job_id = alice.transcribe(wav_bytes(40)).json()["id"]
        alice.heartbeat(status="offline")
        body = alice.get(f"/v1/transcriptions/{job_id}").json()
        assert body["status"] == "failed"
        assert body["error"]["code"] == "worker_required"
        assert "Your worker went offline" in body["error"]["message"]

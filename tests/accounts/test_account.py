import pytest

from tests.helpers import grant, online_worker


@pytest.mark.django_db
class TestAccount:
    def test_it_shows_a_new_key_with_nothing_online(self, alice):
        body = alice.get("/v1/account").json()
        assert body == {
            "key_prefix": alice.raw_key[:12],
            "worker_online": False,
            "workers_online": 0,
            "credits_seconds": 0.0,
            "credits_pending_seconds": 0.0,
            "demos_left_today": 3,
            "pool": {"workers_online": 0, "jobs_queued": 0},
        }

    def test_it_counts_only_this_keys_workers(self, alice, bob):
        online_worker(alice, "a1")
        online_worker(alice, "a2")
        online_worker(bob, "b1")
        body = alice.get("/v1/account").json()
        assert body["worker_online"] is True
        assert body["workers_online"] == 2
        assert body["pool"]["workers_online"] == 3

    def test_it_shows_the_ledger_balance(self, alice):
        grant(alice, 42.5)
        grant(alice, -2.5)
        assert alice.get("/v1/account").json()["credits_seconds"] == 40.0

    def test_it_counts_demos_left_for_the_callers_ip(self, alice, demo_worker):
        alice.transcribe()
        assert alice.get("/v1/account").json()["demos_left_today"] == 2

    def test_its_pool_figures_are_at_most_a_second_old(self, alice, bob, anonymous, monkeypatch):
        from pool import workers

        now = [1_000_000.0]
        monkeypatch.setattr(workers, "clock", lambda: now[0])
        assert alice.get("/v1/account").json()["pool"] == {"workers_online": 0, "jobs_queued": 0}
        online_worker(bob)
        now[0] += 0.9
        assert alice.get("/v1/account").json()["pool"]["workers_online"] == 0, "counted 0.9 s ago"
        assert bob.get("/v1/account").json()["workers_online"] == 1, "a key's own workers count at once"
        now[0] += 0.1
        assert alice.get("/v1/account").json()["pool"]["workers_online"] == 1
        assert anonymous.get("/v1/health").json()["backend"]["pool"]["workers_online"] == 1


@pytest.mark.django_db
def test_health_is_public_and_live(anonymous, alice):
    online_worker(alice)
    alice.transcribe()
    body = anonymous.get("/v1/health").json()
    assert body["status"] == "ok"
    assert body["version"] == "1.3.0"
    assert body["backend"] == {"mode": "coordinator", "pool": {"workers_online": 1, "jobs_queued": 1}}

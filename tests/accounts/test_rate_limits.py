"""30 requests a minute per key, shown in headers; the worker protocol has its own budget."""
import pytest

from tests.helpers import Caller, online_worker

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_keyed_responses_carry_the_limit_headers(alice):
    first = alice.get("/v1/account")
    second = alice.get("/v1/account")
    assert first["X-RateLimit-Limit"] == "30"
    assert int(first["X-RateLimit-Remaining"]) == 29
    assert int(second["X-RateLimit-Remaining"]) == 28


def test_the_31st_request_in_a_minute_is_429_with_retry_after(alice):
    for _ in range(30):
        assert alice.get("/v1/account").status_code == 200
    response = alice.get("/v1/account")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["X-RateLimit-Remaining"] == "0"


def test_the_count_starts_afresh_when_retry_after_has_passed(alice, monkeypatch):
    from jptranscribe import ratelimit

    for _ in range(31):
        refused = alice.get("/v1/account")
    assert refused.status_code == 429
    now, wait = ratelimit.clock(), int(refused["Retry-After"])
    monkeypatch.setattr(ratelimit, "clock", lambda: now + wait - 1)
    assert alice.get("/v1/account").status_code == 429, "not a second early"
    monkeypatch.setattr(ratelimit, "clock", lambda: now + wait)
    again = alice.get("/v1/account")
    assert again.status_code == 200 and again["X-RateLimit-Remaining"] == "29"


def test_the_limit_is_per_key(alice, bob):
    for _ in range(30):
        alice.get("/v1/account")
    assert alice.get("/v1/account").status_code == 429
    assert bob.get("/v1/account").status_code == 200


def test_the_limit_holds_for_every_user_endpoint(alice):
    for _ in range(30):
        alice.get("/v1/transcriptions/tx_unknown")
    assert alice.post("/v1/transcribe", {}).status_code == 429
    assert alice.post("/v1/translate", {"text": "こんにちは"}).status_code == 429


def test_a_busy_worker_does_not_trip_it(alice):
    online_worker(alice)
    for _ in range(100):
        assert alice.claim().status_code == 200
    assert alice.get("/v1/account").status_code == 200, "worker calls do not spend the user budget"


def test_the_worker_protocol_has_its_own_limit(alice, settings):
    settings.JPT_RATE_WORKER = "5/m"
    online_worker(alice)
    codes = [alice.claim().status_code for _ in range(6)]
    assert codes[-1] == 429 and codes[:4] == [200] * 4


def test_the_servers_demo_workers_are_not_held_to_the_worker_limit(demo_worker, alice, settings):
    """One server key runs a demo worker on every app server: a budget per key would be shared by
    as many of them as there are nodes."""
    settings.JPT_RATE_WORKER = "5/m"
    online_worker(alice)
    answers = [demo_worker.claim("demo") for _ in range(10)]
    assert [answer.status_code for answer in answers] == [200] * 10
    assert "X-RateLimit-Limit" not in answers[-1], "no limit, so no limit's headers"
    assert [alice.claim().status_code for _ in range(6)][-1] == 429, "a volunteer's key still is"


def test_counters_are_shared_not_per_process(alice):
    """Two clients of one key (think: two app servers) share one budget through the shared cache."""
    other = Caller(alice.raw_key, ip="192.0.2.77")
    for _ in range(15):
        alice.get("/v1/account")
        other.get("/v1/account")
    assert other.get("/v1/account").status_code == 429


def test_requests_without_a_valid_key_are_limited_per_address(db):
    guesser = Caller("jpt_" + "x" * 40, ip="192.0.2.66")
    for _ in range(30):
        assert guesser.get("/v1/account").status_code == 401
    response = guesser.get("/v1/account")
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    message = response.json()["error"]["message"]
    assert f"retry in {response['Retry-After']} s." in message and message.count(response["Retry-After"]) == 1
    assert Caller(None, ip="192.0.2.66").get("/v1/account").status_code == 429, "a missing key counts too"
    assert Caller(None, ip="192.0.2.67").get("/v1/account").status_code == 401, "another address has its own"


def test_rates_are_written_as_a_count_per_period():
    from jptranscribe.ratelimit import parse_rate

    assert parse_rate("30/m") == (30, 60)
    assert parse_rate("1200/m") == (1200, 60)
    assert parse_rate("100/5m") == (100, 300)
    assert parse_rate("10/s") == parse_rate("10/") == (10, 1)
    assert parse_rate("1000/d") == (1000, 86400)
    for wrong in ("30", "30/minute", "/m", "30/0m"):
        with pytest.raises(ValueError):
            parse_rate(wrong)

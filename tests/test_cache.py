"""The Redis cache backend keeps Django's contract with fewer round trips."""
import pytest
from django.core.cache import caches

from accounts import usage

pytestmark = pytest.mark.postgres  # the PostgreSQL leg of `make test` runs with Redis as the cache


@pytest.fixture
def redis_cache():
    from jptranscribe.cache import RedisCache

    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        pytest.skip("the cache is not Redis here (JPT_CACHE_URL unset); the PostgreSQL leg runs this")
    cache.clear()
    yield cache
    cache.clear()


def test_incr_counts_an_existing_key_and_keeps_its_expiry(redis_cache):
    redis_cache.set("n", 1, 60)
    assert redis_cache.incr("n") == 2
    assert redis_cache.incr("n", 5) == 7
    assert redis_cache.get("n") == 7
    assert 0 < redis_cache._cache.get_client().ttl(redis_cache.make_key("n")) <= 60


def test_incr_of_a_missing_key_fails_and_creates_nothing(redis_cache):
    with pytest.raises(ValueError):
        redis_cache.incr("missing")
    assert redis_cache.get("missing") is None


def test_one_client_serves_every_call(redis_cache):
    assert redis_cache._cache.get_client() is redis_cache._cache.get_client(write=True)


def test_requests_are_counted_per_key_per_day(redis_cache):
    from accounts.models import ApiKey

    keys = [ApiKey(pk=pk, hashed_key=f"{pk:064x}") for pk in (41, 42, 43)]
    for _ in range(3):
        usage.request_counted(keys[0].hashed_key)
    usage.request_counted(keys[1].hashed_key)
    assert usage.requests_today(keys) == {41: 3, 42: 1, 43: 0}


def test_shared_counts_start_with_a_time_to_live_and_move_together(redis_cache):
    from jptranscribe.cache import count

    assert count(["a", "b"], 1, 60) == [1, 1]
    assert count(["a", "b"], 1, 60) == [2, 2]
    assert count(["a"], -1, 60) == [1]
    assert count(["gone"], -1, 60) == [-1], "a count that ran out restarts"
    ttl = redis_cache._cache.get_client().ttl
    assert all(0 < ttl(redis_cache.make_key(k)) <= 60 for k in ("a", "b", "gone")), "none lives for ever"


def test_each_count_may_have_its_own_time_to_live(redis_cache):
    from jptranscribe.cache import count

    assert count(["minute", "days"], 1, [65, 172800]) == [1, 1]
    ttl = redis_cache._cache.get_client().ttl
    assert 60 < ttl(redis_cache.make_key("minute")) <= 65
    assert 172000 < ttl(redis_cache.make_key("days")) <= 172800


@pytest.mark.django_db
def test_a_keyed_request_costs_one_round_trip_its_key_and_its_counts(redis_cache, alice, monkeypatch):
    """The key (cached), its rate-limit window and its usage today, read and counted together
    (the listing itself touches no cache; /v1/account would read the pool's figures as a second)."""
    import redis

    alice.get("/v1/transcriptions")  # the key is cached from here
    sent = []
    execute = redis.Redis.execute_command
    monkeypatch.setattr(redis.Redis, "execute_command",
                        lambda self, *args, **kw: sent.append(args[0]) or execute(self, *args, **kw))
    response = alice.get("/v1/transcriptions")
    assert response.status_code == 200 and response["X-RateLimit-Remaining"] == "28"
    assert sent == ["EVALSHA"]
    assert usage.requests_today([alice.key]) == {alice.key.pk: 2}


@pytest.mark.django_db
def test_a_key_not_in_the_cache_is_counted_once_it_is_loaded(redis_cache, alice):
    alice.key.forget_cached()
    redis_cache.delete(alice.key.cache_key)
    for remaining in ("29", "28"):  # a miss (loaded, then counted), then a hit (counted with the lookup)
        response = alice.get("/v1/transcriptions")
        assert response.status_code == 200 and response["X-RateLimit-Remaining"] == remaining
    assert usage.requests_today([alice.key]) == {alice.key.pk: 2}


@pytest.mark.django_db
def test_a_key_changed_a_moment_ago_is_counted_once_per_request(redis_cache, alice):
    """The mark a change leaves in the cache is counted with, as the key itself would be."""
    alice.key.forget_cached()
    for remaining in ("29", "28"):
        response = alice.get("/v1/transcriptions")
        assert response.status_code == 200 and response["X-RateLimit-Remaining"] == remaining


@pytest.mark.django_db
def test_made_up_keys_leave_no_counts_in_the_cache(redis_cache, anonymous):
    """Counting comes with the key's lookup only when the key is cached: guessed keys would
    otherwise each leave a count behind for two days."""
    for n in range(5):
        anonymous.client.credentials(HTTP_AUTHORIZATION=f"Bearer jpt_{'x' * 39}{n}")
        assert anonymous.get("/v1/transcriptions").status_code == 401
    names = redis_cache._cache.get_client().keys("*")
    assert not [name for name in names if b"jpt:requests" in name or b"jpt:rate:user" in name], names


@pytest.mark.django_db
def test_the_database_cache_counts_the_same_way():
    from jptranscribe.cache import RedisCache, count

    if isinstance(caches["default"], RedisCache):
        pytest.skip("the SQLite leg runs this on the database cache")
    assert count(["a", "b"], 1, 60) == [1, 1]
    assert count(["a", "b"], 1, [60, 120]) == [2, 2]
    assert count(["a"], -1, 60) == [1]
    with pytest.raises(ValueError):
        count(["a", "b"], 1, [60])


@pytest.mark.django_db
def test_the_database_cache_keeps_a_counts_time_to_live_however_often_it_moves():
    """As on Redis, a count runs out the time it started with after: a place to wait held by a
    server killed mid-wait comes back then. (Django's incr sets the count again for the default
    300 s, so a volunteer's worker retrying its claims kept its lost place taken for ever.)"""
    import time

    from jptranscribe.cache import RedisCache, count

    if isinstance(caches["default"], RedisCache):
        pytest.skip("the SQLite leg runs this on the database cache")
    assert count(["place"], 1, 3) == [1]  # taken by a claim whose server is then killed
    assert count(["place"], 1, 3) == [2]  # the worker's next claim: no place left
    assert count(["place"], -1, 3) == [1]
    time.sleep(3.5)  # past the time the count started with (Django's incr had set it to 300 s)
    assert count(["place"], 1, 3) == [1], "the lost place came back"

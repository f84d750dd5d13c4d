"""The shared cache's backends: every request authenticates, counts its rate limit and its
daily usage through the cache, so each call shows in throughput and each count must hold
under concurrent requests."""

import threading
from collections.abc import Sequence
from typing import Any, cast

import redis
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.db import connections, models, router, transaction
from django.utils import timezone

# INCRBY only when the key exists (Django's incr contract), in one round trip.
INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return nil
"""

# INCRBY on each key, each given its own time to live (ARGV[1 + i]) when it has none (a count that
# starts here), in one round trip.
COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCRBY', key, ARGV[1])
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1 + i]) end
end
return counts
"""

# GET of KEYS[1]; only when it holds a value, COUNT's INCRBY on each further key (ARGV[1 + i - 1]
# its time to live), so a lookup that finds nothing leaves no count behind.
GET_AND_COUNT = """
local value = redis.call('GET', KEYS[1])
if not value then return {false} end
local out = {value}
for i = 2, #KEYS do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[1])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[i]) end
end
return out
"""


# A shared cache that cannot be reached (Redis down, restarting, or its address lost) raises these.
UNREACHABLE: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_pools: dict[tuple[str, str], Any] = {}
_pools_lock = threading.Lock()


# Redis: Django's backend with fewer round trips.
class FewerRoundTripsClient(RedisCacheClient):
    # Kept per process, not per cache object (see _get_connection_pool).
    _clients: dict[Any, Any] = {}
    _incr_scripts: dict[Any, Any] = {}

    def _get_connection_pool(self, write):
        """One pool per server and process. Django keeps a pool per cache object, and caches are
        per context: under WSGI a thread's, under ASGI a request's, so each request would connect
        to Redis anew (and leave its pool's connections open until the collector finds them)."""
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        where = (self._servers[index], repr(sorted(self._pool_options.items())))  # type: ignore[attr-defined]
        with _pools_lock:
            pool = _pools.get(where)
            if pool is None:
                pool = _pools[where] = self._pool_class.from_url(self._servers[index], **self._pool_options)  # type: ignore[attr-defined]
        return pool

    def get_client(self, key=None, *, write=False):
        """One client per server, kept: Django builds a new one on every call. redis-py
        clients are thread-safe; each command borrows a connection from the pool."""
        # Django's own helpers (what its get_client calls), which the stubs leave out.
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client

    def _script(self, client, source):
        script = self._incr_scripts.get((id(client), source))
        if script is None:
            script = self._incr_scripts[(id(client), source)] = client.register_script(source)
        return script

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = self._script(client, INCR_EXISTING)(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def count(self, keys: list[str], delta: int, timeouts: list[int]) -> list[int]:
        client = self.get_client(keys[0], write=True)
        return [int(n) for n in self._script(client, COUNT)(keys=keys, args=[delta, *timeouts])]

    def get_and_count(self, key: str, keys: list[str], delta: int, timeouts: list[int]) -> tuple[Any, list[int]]:
        client = self.get_client(key, write=True)
        value, *counts = self._script(client, GET_AND_COUNT)(keys=[key, *keys], args=[delta, *timeouts])
        if value is None:
            return None, []
        return self._serializer.loads(value), [int(n) for n in counts]  # type: ignore[attr-defined]


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = FewerRoundTripsClient

    def count(self, keys: list[str], delta: int, timeouts: list[int]) -> list[int]:
        client = cast(FewerRoundTripsClient, self._cache)  # made from self._class, set above
        return client.count([self.make_and_validate_key(key) for key in keys], delta, timeouts)

    def get_and_count(self, key: str, keys: list[str], delta: int, timeouts: list[int]) -> tuple[Any, list[int]]:
        client = cast(FewerRoundTripsClient, self._cache)
        return client.get_and_count(
            self.make_and_validate_key(key), [self.make_and_validate_key(k) for k in keys], delta, timeouts
        )


class DatabaseCache(DjangoDatabaseCache):
    """Django's database cache with an increment that counts every request, and keeps its count's
    expiry as Redis does.

    The stock `incr` reads the value and writes it back, so requests arriving together all read
    the same count (40 requests at once all passed a limit of 30). Here the read and the write
    are one transaction holding the row (SQLite takes its write lock at BEGIN). The stock one
    also writes the count back for the default 300 s: a count moved more often than that never
    ran out, so a place to wait that a killed server never gave back stayed taken for ever."""

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        table = connection.ops.quote_name(self.cache_model_class._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with transaction.atomic(using=db):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT expires FROM {table} WHERE cache_key = %s{lock}",
                    [self.make_and_validate_key(key, version=version)],
                )
                row = cursor.fetchone()
            value = self.get(key, self._missing_key, version=version)
            if row is None or value is self._missing_key:
                raise ValueError(f"Key '{key}' not found")
            expires = row[0]
            field = models.Expression(output_field=models.DateTimeField())
            for converter in connection.ops.get_db_converters(field) + field.get_db_converters(connection):
                expires = converter(expires, field, connection)
            left = (expires - timezone.now()).total_seconds()
            self.set(key, value + delta, timeout=max(left, 1), version=version)
            return value + delta


def get_and_count(key: str, keys: Sequence[str], delta: int, timeouts: Sequence[int]) -> tuple[Any, list[int] | None]:
    """The cached value of `key` and, only when there is one, `count(keys, delta, timeouts)`: one
    round trip on Redis for what a keyed request needs first (its key, its rate limit and usage).
    (None, None) when `key` holds nothing: nothing was counted."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        value, counts = backend.get_and_count(key, list(keys), delta, list(timeouts))
        return (None, None) if value is None else (value, counts)
    value = cache.get(key)
    return (None, None) if value is None else (value, count(keys, delta, timeouts))


def count(keys: Sequence[str], delta: int, timeout: int | Sequence[int]) -> list[int]:
    """Add `delta` to each of some shared counts, starting any that is missing (to live `timeout`
    seconds: one for all, or one per count); their new values. One round trip on Redis, whatever
    the number of counts, so a request's rate limit and daily usage cost one."""
    timeouts = [timeout] * len(keys) if isinstance(timeout, int) else list(timeout)
    if len(timeouts) != len(keys):
        raise ValueError(f"{len(keys)} counts but {len(timeouts)} times to live.")
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        return backend.count(list(keys), delta, timeouts)
    counts = []
    for key, seconds in zip(keys, timeouts, strict=True):
        cache.add(key, 0, timeout=seconds)
        try:
            counts.append(cache.incr(key, delta))
        except ValueError:  # it ran out between the two calls
            cache.add(key, delta, timeout=seconds)
            counts.append(delta)
    return counts

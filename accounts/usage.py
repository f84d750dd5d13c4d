"""Requests per key per day, for the admin: a counter in the shared cache, not a table write
per request. Kept two days so yesterday's figure survives midnight for a while."""

from collections.abc import Sequence
from datetime import date

from django.core.cache import cache
from django.utils import timezone

from accounts.models import ApiKey
from jptranscribe.cache import count

KEEP_SECONDS = 2 * 24 * 3600


def _name(key_hash: str, day: date) -> str:
    """Named by the key's hash, which a request knows before its key is loaded: its key and its
    counts are then one round trip (`accounts.auth.key_for_bearer`)."""
    return f"jpt:requests:{day.isoformat()}:{key_hash}"


def today(key_hash: str) -> tuple[str, int]:
    """The count of the key's requests today, as `jptranscribe.cache.count` takes it: name and time to live."""
    return _name(key_hash, timezone.now().date()), KEEP_SECONDS


def request_counted(key_hash: str, *also: tuple[str, int]) -> list[int]:
    """Count the key's request today, and add one to each of `also` (a count's name and seconds
    to live: the request's rate-limit window) in the same cache round trip; `also`'s new counts."""
    counts = [*also, today(key_hash)]
    return count([name for name, _ in counts], 1, [seconds for _, seconds in counts])[:-1]


def requests_today(keys: Sequence[ApiKey]) -> dict[int, int]:
    """{key pk: requests today} in one cache round trip."""
    day = timezone.now().date()
    found = cache.get_many([_name(key.hashed_key, day) for key in keys])
    return {key.pk: found.get(_name(key.hashed_key, day), 0) for key in keys}

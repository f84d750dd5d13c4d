"""Requests per key per day, for the admin: a counter in the shared cache, not a table write
per request. Kept two days so yesterday's figure survives midnight for a while."""

from collections.abc import Sequence
from datetime import date

from django.core.cache import cache
from django.utils import timezone

from jptranscribe.cache import count

KEEP_SECONDS = 2 * 24 * 3600


def _name(key_pk: int, day: date) -> str:
    return f"jpt:requests:{day.isoformat()}:{key_pk}"


def request_counted(key_pk: int, *also: tuple[str, int]) -> list[int]:
    """Count the key's request today, and add one to each of `also` (a count's name and seconds
    to live: the request's rate-limit window) in the same cache round trip; `also`'s new counts."""
    names = [name for name, _ in also] + [_name(key_pk, timezone.now().date())]
    counts = count(names, 1, [seconds for _, seconds in also] + [KEEP_SECONDS])
    return counts[:-1]


def requests_today(key_pks: Sequence[int]) -> dict[int, int]:
    """{key pk: requests today} in one cache round trip."""
    day = timezone.now().date()
    found = cache.get_many([_name(pk, day) for pk in key_pks])
    return {pk: found.get(_name(pk, day), 0) for pk in key_pks}

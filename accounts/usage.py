"""Requests per key per day, for the admin: a counter in the shared cache, not a table write
per request. Kept two days so yesterday's figure survives midnight for a while."""

from collections.abc import Sequence
from datetime import date

from django.core.cache import cache
from django.utils import timezone

KEEP_SECONDS = 2 * 24 * 3600


def _name(key_pk: int, day: date) -> str:
    return f"jpt:requests:{day.isoformat()}:{key_pk}"


def request_counted(key_pk: int) -> None:
    """One cache call on all but a key's first request of the day."""
    name = _name(key_pk, timezone.now().date())
    try:
        cache.incr(name)
    except ValueError:  # the first today (a race here loses a count at most)
        if not cache.add(name, 1, KEEP_SECONDS):
            cache.incr(name)


def requests_today(key_pks: Sequence[int]) -> dict[int, int]:
    """{key pk: requests today} in one cache round trip."""
    day = timezone.now().date()
    found = cache.get_many([_name(pk, day) for pk in key_pks])
    return {pk: found.get(_name(pk, day), 0) for pk in key_pks}

"""Places to wait, counted across every app server: a request that would hold a server thread
for long (a long-polled claim, a transcribe call waiting for its text) takes a place first, and
a key or an address has only so many."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache

from jptranscribe.cache import count_up

# Longer than any wait (claims 25 s, transcribe 120 s). The count restarts when it runs out, so
# the places of a server killed mid-wait come back by then at the latest.
PLACES_TTL_SECONDS = 300


@contextmanager
def place(name: str, limit: int) -> Iterator[bool]:
    """Take one of `limit` places named `name` for the duration of the block; yields whether
    one was free (the block runs either way, and gives the place back either way)."""
    key = f"jpt:places:{name}"
    taken = count_up(key, PLACES_TTL_SECONDS)
    try:
        yield taken <= limit
    finally:
        try:
            cache.decr(key)
        except ValueError:
            pass

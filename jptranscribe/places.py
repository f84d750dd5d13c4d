"""Places to wait, counted across every app server: a request that would hold a server thread
for long (a long-polled claim, a transcribe call waiting for its text) takes a place first, and
a key or an address has only so many."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from jptranscribe.cache import UNREACHABLE, count

log = logging.getLogger(__name__)

# Longer than any wait (claims 55 s, transcribe 120 s). The count restarts when it runs out, so
# the places of a server killed mid-wait come back by then at the latest.
PLACES_TTL_SECONDS = 300


@contextmanager
def places(*wanted: tuple[str, int]) -> Iterator[bool]:
    """Take a place under each `(name, limit)` for the duration of the block; yields whether each
    had one free (the block runs either way, and every place is given back either way).

    A place that cannot be given back (the shared cache went away meanwhile) is left to its count's
    end: the block's answer (a job held, a transcription's text) matters more than the place."""
    keys = [f"jpt:places:{name}" for name, _ in wanted]
    taken = count(keys, 1, PLACES_TTL_SECONDS)
    try:
        yield all(n <= limit for n, (_, limit) in zip(taken, wanted, strict=True))
    finally:
        try:
            count(keys, -1, PLACES_TTL_SECONDS)
        except UNREACHABLE as lost:
            log.warning(
                "could not give back places %s (%s); their counts end within %d s", keys, lost, PLACES_TTL_SECONDS
            )

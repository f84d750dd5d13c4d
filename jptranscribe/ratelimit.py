"""Rate limits in fixed windows, counted in the shared cache so they hold across processes and
app servers: one count per group, subject and window, which starts afresh when the window ends.

The caller adds to the window's count itself (`jptranscribe.cache.count`), so a keyed request
counts its rate limit and its daily usage in one round trip."""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass

from jptranscribe.cache import count

# The limiter's clock; tests hold it still so a test's requests fall in one window.
clock = time.time

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# "30/m", "100/5m", "10/s", "5/h", "1000/d" (django-ratelimit's notation, which the settings use).
_RATE = re.compile(r"(\d+)/(\d*)([smhd]?)", re.IGNORECASE)

# A count outlives its window by this much, so an app server whose clock is a little behind
# still adds to the same count.
EXPIRY_MARGIN_SECONDS = 5


def parse_rate(rate: str) -> tuple[int, int]:
    """'30/m' as (30, 60): requests allowed, and the window's length in seconds."""
    match = _RATE.fullmatch(rate.strip())
    if match is None:
        raise ValueError(f"A rate is 'count/period' such as '30/m' or '100/5m', not {rate!r}.")
    limit, multiple, unit = match.groups()
    period = _PERIODS[(unit or "s").lower()] * int(multiple or 1)
    if period <= 0:
        raise ValueError(f"A rate's period must be longer than 0 s: {rate!r}.")
    return int(limit), period


@dataclass(frozen=True)
class Window:
    """The window a request falls in: its count's name in the cache and how long it has left."""

    key: str
    limit: int
    seconds_left: int  # 1 to the period: what Retry-After says once the limit is reached
    ttl: int

    def exceeded(self, used: int) -> bool:
        return used > self.limit

    def remaining(self, used: int) -> int:
        return max(0, self.limit - used)


def window(group: str, subject: str, rate: str) -> Window:
    """The current window of `subject` (a key, an address) under the limit `group`.

    Each subject's windows are shifted by a hash of it (as django-ratelimit does), so the
    windows of all keys do not end, and their holders retry, at the same second."""
    limit, period = parse_rate(rate)
    now = int(clock())
    offset = zlib.crc32(subject.encode()) % period
    number = (now - offset) // period
    ends = (number + 1) * period + offset
    return Window(
        key=f"jpt:rate:{group}:{period}:{subject}:{number}",
        limit=limit,
        seconds_left=ends - now,
        ttl=period + EXPIRY_MARGIN_SECONDS,
    )


def hit(group: str, subject: str, rate: str) -> tuple[Window, int]:
    """Count one request in its window (one round trip on Redis); the window and its count."""
    current = window(group, subject, rate)
    (used,) = count([current.key], 1, current.ttl)
    return current, used

"""The pool's rules as plain functions: no database, so each reads (and is tested) on its own."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from django.conf import settings

# A claim that queued this long in the server before it ran came in a burst (every volunteer
# claiming again after a restart, or after the server fell behind): its empty answer comes at a
# random point between half its wait and all of it, so the burst's claims do not all end, and
# come back, together again. Claims that did not queue wait exactly what they asked.
CLAIM_BURST_QUEUED_SECONDS = 1.0


def claim_wait_seconds(asked: float, *, queued: float = 0.0) -> float:
    """How long a claim waits for a job: what it asked, at most JPT_CLAIM_WAIT_MAX_SECONDS, spread
    out when it came in a burst (see CLAIM_BURST_QUEUED_SECONDS)."""
    wait = max(0.0, min(asked, settings.JPT_CLAIM_WAIT_MAX_SECONDS))
    if queued > CLAIM_BURST_QUEUED_SECONDS:
        wait *= random.uniform(0.5, 1.0)
    return wait


def lease_expires_at(now: datetime) -> datetime:
    """A lease runs this long after the claim or the worker's last heartbeat."""
    return now + timedelta(seconds=settings.JPT_LEASE_SECONDS)


def lease_hard_expires_at(now: datetime) -> datetime:
    """However often it is renewed, a lease ends this long after its claim (JPT_LEASE_MAX_SECONDS):
    a worker that keeps beating but never finishes cannot keep a job from its caller."""
    return now + timedelta(seconds=settings.JPT_LEASE_MAX_SECONDS)


def renewed_lease_expires_at(now: datetime, hard_expires_at: datetime | None) -> datetime:
    """A heartbeat that names a lease renews it, up to its hard limit."""
    renewed = lease_expires_at(now)
    return min(renewed, hard_expires_at) if hard_expires_at is not None else renewed


# A worker holds at most as many jobs as it runs at once; the places are numbered 1 to this.
WORKER_SLOTS = 16


def declared_max_jobs(asked: int) -> int:
    """How many jobs at once a worker may hold: what it declared, within JPT_WORKER_MAX_JOBS."""
    return max(1, min(asked, settings.JPT_WORKER_MAX_JOBS, WORKER_SLOTS))


def slots_to_try(*, held: int, max_jobs: int) -> list[int]:
    """The places (1 to `max_jobs`) a claim tries in turn, each holding one job: first the one
    after those held (free unless jobs ended out of order), then the rest."""
    places = range(1, max(1, min(max_jobs, WORKER_SLOTS)) + 1)
    return [p for p in places if p > held] + [p for p in places if p <= held]


def lease_has_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at < now


def registration_expires_at(now: datetime) -> datetime:
    """A worker stays registered this long after its last heartbeat (it counts as online for less)."""
    return now + timedelta(seconds=settings.JPT_WORKER_TTL_SECONDS)


class AfterFailure(Enum):
    RETRY = "retry"
    GIVE_UP = "give up"


def after_failure(tries: int) -> AfterFailure:
    """A job that failed or whose worker went silent is tried again, up to JPT_MAX_ATTEMPTS tries
    in all (a pool job counts one per key that failed it: see `pool.leases`)."""
    return AfterFailure.GIVE_UP if tries >= settings.JPT_MAX_ATTEMPTS else AfterFailure.RETRY


def credited_seconds(
    *, duration: Decimal | float, owner_key_id: int, worker_key_id: int, worker_is_server: bool
) -> float:
    """What a worker's owner earns for a job: the clip's seconds for others' audio; nothing for
    its own, and nothing for the server's demo worker."""
    earns = owner_key_id != worker_key_id and not worker_is_server
    return float(duration) if earns else 0.0


# Japanese speech runs at about 8 characters a second; a result may hold five times that, plus a
# little, and no more: a longer one is no transcript of this clip (and would be translated).
RESULT_CHARS_PER_SECOND = 40
RESULT_CHARS_BASE = 200


def max_result_chars(duration: Decimal | float) -> int:
    return int(float(duration) * RESULT_CHARS_PER_SECOND) + RESULT_CHARS_BASE


def words_chars(segments: list[dict]) -> int:
    """How many characters the segments' words hold: a second copy of the text, held to its limit."""
    return sum(len(word["word"]) for segment in segments for word in segment.get("words", ()))


def segment_texts_chars(segments: list[dict]) -> int:
    """How many characters the segments' texts hold: another copy of the text, held to its limit."""
    return sum(len(segment["text"]) for segment in segments)


def segments_chars(segments: list[dict]) -> int:
    """The larger of the segments' two copies of the text (their texts, their words): what the
    completion statement holds to the text's limit."""
    return max(segment_texts_chars(segments), words_chars(segments))


def segments_within(segments: list[dict], duration: Decimal | float) -> list[dict]:
    """The segments with their times inside the clip (0 to its length), and their words' times
    inside their segment, all else kept: an engine's last segment may run past the end, and a
    worker's numbers are not to be trusted."""
    clip_end = round(float(duration), 3)
    inside = []
    for segment in segments:
        start = min(max(segment["start"], 0.0), clip_end)
        end = min(max(segment["end"], start), clip_end)
        kept = {**segment, "start": start, "end": end}
        if "words" in segment:
            kept["words"] = [_within(word, start, end) for word in segment["words"]]
        inside.append(kept)
    return inside


def _within(timed: dict, start: float, end: float) -> dict:
    """`timed` with its start and end inside start to end, and its end not before its start."""
    inner_start = min(max(timed["start"], start), end)
    return {**timed, "start": inner_start, "end": min(max(timed["end"], inner_start), end)}


# What a job asks of its worker's engine, as a claim hands it over.
JOB_OPTIONS = {"prompt": None, "temperature": None, "word_timestamps": False}


def job_options(given: Mapping[str, Any] | None) -> dict:
    """The caller's transcription options, every one present (a job stored before it had options
    asks for nothing): `prompt` a string or null, `temperature` a number or null (null: the
    engine's default), `word_timestamps` a boolean. The API checked the caller's values."""
    options = {**JOB_OPTIONS, **(given or {})}
    unknown = set(options) - set(JOB_OPTIONS)
    if unknown:
        raise ValueError(f"unknown transcription options: {sorted(unknown)}")
    prompt, temperature = options["prompt"], options["temperature"]
    return {
        "prompt": str(prompt) if prompt else None,
        "temperature": float(temperature) if temperature is not None else None,
        "word_timestamps": bool(options["word_timestamps"]),
    }


def queued_since_cutoff(now: datetime) -> datetime:
    """A job queued before this, and still not taken, fails so its caller hears back
    (JPT_QUEUE_TIMEOUT_SECONDS)."""
    return now - timedelta(seconds=settings.JPT_QUEUE_TIMEOUT_SECONDS)

"""The translation model, prepared in the background when it is missing, as the demo worker
gets its own: a newcomer's `make run` ends up translating without an operator's step.

`serve` runs `manage.py translation_model prepare` beside gunicorn (JPT_TRANSLATION_AUTO_FETCH).
One process per node and model folder works at a time: it takes a turn in the shared cache
(renewed while it works, so a preparer that is killed frees it), downloads and converts
JPT_TRANSLATION_FETCH_URL, and publishes how far along it is in the cache, where every
gunicorn process reads it for /v1/health and /v1/translate. The model lands on this node's
disk, so each node prepares its own (the keys name the host). Offline it says once in the log
why translation is off and which command turns it on, then tries again after a long pause.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.core.cache import cache
from django.db import connections

from translation import installing
from translation.engine import is_model_dir
from worker_client.models import ModelError

log = logging.getLogger(__name__)

FETCH_COMMAND = ".venv/bin/python manage.py translation_model fetch"
DOWNLOADING, CONVERTING, FAILED = "downloading", "converting", "failed"
TURN_SECONDS = 60.0  # a preparer that stops renewing its turn (killed) frees it after this long
PUBLISH_SECONDS = 1.0  # progress reaches the cache at most this often: without Redis each write is a database write
BUSY_SECONDS = 15.0  # a process that did not get the turn looks again after this long
MAX_RETRY_SECONDS = 24 * 3600.0


class Stopped(Exception):
    """The preparer was asked to stop (serve is stopping): the partial download is kept for next time."""


def _keys(target: Path) -> tuple[str, str]:
    """The turn's and the progress's cache keys for this node's model folder."""
    node = hashlib.sha256(f"{socket.gethostname()}\0{os.path.abspath(target)}".encode()).hexdigest()[:16]
    return f"jpt:translation-model:turn:{node}", f"jpt:translation-model:state:{node}"


@dataclass(frozen=True)
class Preparation:
    """What this node's preparer last published: a phase with its bytes, or a failure."""

    phase: str
    done: int = 0
    total: int | None = None
    reason: str = ""
    retry_at: float | None = None

    @property
    def progress(self) -> float | None:
        """The share of the download done (1.0 once converting); None when the size is unknown."""
        if self.phase == CONVERTING:
            return 1.0
        return min(1.0, self.done / self.total) if self.total else None


def published(target: Path) -> Preparation | None:
    """This node's preparation of `target`, or None: none has run, or its preparer died (its turn ran out)."""
    turn_key, state_key = _keys(target)
    found = cache.get_many([turn_key, state_key])
    state = found.get(state_key)
    if not state or (state["phase"] != FAILED and turn_key not in found):
        return None
    return Preparation(**state)


def _retry_delay(failures: int, retry_seconds: float) -> float | None:
    return min(MAX_RETRY_SECONDS, retry_seconds * 2 ** (failures - 1)) if retry_seconds > 0 else None


def _in_words(seconds: float) -> str:
    return (
        f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
    )


class Preparer:
    """Gets the model at `target` from `url` unless it is there. `run` goes on until it is there or
    `stop` is set; `attempt` is one go (what the tests drive)."""

    def __init__(self, url: str, target: Path, *, retry_seconds: float, stop: threading.Event | None = None) -> None:
        self.url, self.target = url, Path(target)
        self.retry_seconds = retry_seconds
        self.stop = stop or threading.Event()
        self.turn_key, self.state_key = _keys(self.target)
        self.failures = 0
        self.logged_reason = ""

    def run(self) -> None:
        """The first go starts at once, even if an earlier process scheduled a retry: a restart is a
        reason to try again. Later goes keep the schedule the failures set."""
        first = True
        try:
            while not self.stop.is_set():
                wait = self.attempt(keep_schedule=not first)
                first = False
                if wait is None:
                    return
                self.stop.wait(wait)
        finally:
            connections.close_all()

    def attempt(self, *, keep_schedule: bool = True) -> float | None:
        """One go. None when there is nothing more to do (the model is in place, the preparer was
        stopped, or it failed and retries are off); else the seconds until the next go."""
        if is_model_dir(self.target):
            return None
        if keep_schedule:
            earlier = published(self.target)
            if earlier and earlier.phase == FAILED and earlier.retry_at and earlier.retry_at > time.time():
                return earlier.retry_at - time.time()
        token = uuid.uuid4().hex
        if not cache.add(self.turn_key, token, TURN_SECONDS):
            return BUSY_SECONDS  # another process of this node is at it: its progress is in the cache
        try:
            if is_model_dir(self.target):  # it finished between our look and our turn
                return None
            return self._fetch(token)
        finally:
            if cache.get(self.turn_key) == token:
                cache.delete(self.turn_key)

    def _fetch(self, token: str) -> float | None:
        started = time.monotonic()
        work = _Work(self, token)
        failure: tuple[str, bool] | None = None  # the reason, and whether it is unexpected (worth a traceback)
        stopped = False
        try:
            installing.fetch_opus_mt(
                self.url, self.target, progress=False, session=work.session(), converting=work.converting
            )
        except Stopped:
            stopped = True
        except ModelError as exc:
            failure = (str(exc), False)
        except Exception as exc:  # noqa: BLE001 - a disk or converter error must not end the server: it is reported
            failure = (f"preparing the model failed ({exc.__class__.__name__}: {exc})", True)
        finally:
            work.close()  # before the outcome is published, so that no late progress report overwrites it
        if failure:
            return self._failed(*failure)
        cache.delete(self.state_key)
        if stopped:
            return None
        self.failures = 0
        log.info(
            "translation: the model is ready at %s (%.0f s); the server uses it from the next request",
            self.target,
            time.monotonic() - started,
        )
        return None

    def _failed(self, reason: str, unexpected: bool) -> float | None:
        """Publish the failure, and say it in the log once (per reason) as one line with the command
        that turns translation on: offline, every retry would say the same."""
        self.failures += 1
        delay = _retry_delay(self.failures, self.retry_seconds)
        retry_at = time.time() + delay if delay else None
        state = {"phase": FAILED, "reason": reason, "retry_at": retry_at}
        cache.set(self.state_key, state, timeout=delay + TURN_SECONDS if delay else None)
        if reason != self.logged_reason:
            self.logged_reason = reason
            then = f"tried again in {_in_words(delay)}" if delay else "tried again at the next start"
            log.warning(
                "translation is off: %s. Turn it on with `%s` (or wait: %s).",
                reason.rstrip("."),
                FETCH_COMMAND,
                then,
                exc_info=unexpected,
            )
        return delay


class _Work:
    """One go's progress: counts the bytes as `download` reads them and, from a thread of its own,
    publishes them and renews the turn, also while the converter (which reports nothing) runs."""

    def __init__(self, preparer: Preparer, token: str) -> None:
        self.preparer = preparer
        self.token = token
        self.state: dict[str, Any] = {"phase": DOWNLOADING, "done": 0, "total": None}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._told = False
        self._publish()
        self._thread = threading.Thread(target=self._keep, name="translation-prepare", daemon=True)
        self._thread.start()

    def session(self) -> requests.Session:
        session = requests.Session()
        session.hooks["response"].append(self._counting)
        return session

    def converting(self) -> None:
        with self._lock:
            self.state["phase"] = CONVERTING
        self._publish()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _counting(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A response hook: the archive's size from its headers, then each chunk as it is read."""
        if response.status_code not in (200, 206):
            return
        have = 0
        if response.status_code == 206:  # resuming the part an earlier go left
            have = int(str(response.request.headers.get("Range", "")).removeprefix("bytes=").rstrip("-") or 0)
        length = int(response.headers.get("Content-Length") or 0)
        with self._lock:
            self.state.update(done=have, total=have + length if length else None)
        if not self._told:
            self._told = True
            megabytes = (have + length) / 1e6
            size = f" ({megabytes:.{0 if megabytes >= 10 else 1}f} MB)" if length else ""
            log.info(
                "translation: no model yet; downloading %s%s in the background (/v1/health shows how far along)",
                self.preparer.url,
                size,
            )
        chunks = response.iter_content

        def counted(chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
            for chunk in chunks(chunk_size, decode_unicode):
                if self.preparer.stop.is_set():
                    raise Stopped
                with self._lock:
                    self.state["done"] += len(chunk)
                yield chunk

        response.iter_content = counted  # type: ignore[method-assign]

    def _publish(self) -> None:
        with self._lock:
            state = dict(self.state)
        cache.set(self.preparer.state_key, state, TURN_SECONDS)

    def _keep(self) -> None:
        published = dict(self.state)
        renewed = time.monotonic()
        try:
            while not self._closed.wait(PUBLISH_SECONDS):
                due = time.monotonic() - renewed >= TURN_SECONDS / 3
                with self._lock:
                    current = dict(self.state)
                try:
                    if due or current != published:
                        published = current
                        cache.set(self.preparer.state_key, current, TURN_SECONDS)
                    if due:
                        renewed = time.monotonic()
                        if cache.get(self.preparer.turn_key) == self.token:
                            cache.touch(self.preparer.turn_key, TURN_SECONDS)
                except Exception:
                    log.debug("translation: could not publish the progress", exc_info=True)
        finally:
            connections.close_all()

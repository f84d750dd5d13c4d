"""Wake-ups for long-polls, so waiting requests neither busy-poll nor miss work.

Each process keeps a hub of waiters keyed by channel (`jptranscribe.waiting.Waiter`: a waiting
request awaits one on the event loop, a thread sleeps on it). A change is announced after its
transaction commits: on PostgreSQL with NOTIFY, which a listener thread in every process (every
app server) relays to its hub; on SQLite, a single-node database, straight to this process's hub.
A queued job wakes one waiter of its queue, this process's own if it has one asleep: then no
NOTIFY goes out, and no waiter in another process wakes to find the job taken. A waiter woken
while it was not waiting (it was looking in the database, and that look may have missed the job)
passes its wake-up on as it leaves.
As a safety net (for what no announcement covers, e.g. a check copy that opens to more workers
with time), every JPT_WAKEUP_POLL_SECONDS the hub wakes the longest-sleeping waiter of each
channel to look again: a cost per channel, not per waiter, so thousands of idle volunteers do
not each query the database every few seconds.

Channels are named by the functions below, and only by them: a job ready to claim
wakes one waiter of its queue; a finished job wakes everyone waiting for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import connection, transaction
from psycopg.conninfo import make_conninfo

from jptranscribe.waiting import Waiter
from pool.models import Job

log = logging.getLogger(__name__)
PG_CHANNEL = "jpt_pool"
QUEUED = "queued:"


DONE = "done:"


def job_done_channel(job_id: str) -> str:
    return f"{DONE}{job_id}"


def any_job_done_channel() -> str:
    """Woken by every job that ends (after its own channel), e.g. for the webhook deliveries."""
    return f"{DONE}*"


def job_queued_channel(job: Job) -> str:
    """The queue a job waits in: the demo's, its owner's own workers', or the pool's."""
    if job.route == Job.Route.SERVER_DEMO:
        return f"{QUEUED}demo"
    if job.route == Job.Route.POOL_SELF:
        return f"{QUEUED}self:{job.key_id}"
    return f"{QUEUED}credit"  # pool jobs and checks of them


def check_channels() -> list[str]:
    """Where a check copy is announced: the pool's workers and the server's demo worker take them."""
    return [f"{QUEUED}credit", f"{QUEUED}demo"]


# A waiter promised a job being queued (woken when that job's transaction commits) is not picked for
# another meanwhile; if the transaction rolls back instead, the promise lapses after this long.
PROMISE_SECONDS = 1.0


def claim_channels(*, key_id: int, is_server: bool) -> list[str]:
    """The queues a worker of this key takes jobs from (as the claim statements pick them)."""
    if is_server:
        return [f"{QUEUED}demo"]
    return [f"{QUEUED}self:{key_id}", f"{QUEUED}credit"]


class _Hub:
    def __init__(self, *, safety_net: bool = True) -> None:
        self.safety_net = safety_net  # `tick` wakes someone (off: every wake-up has a cause)
        self._lock = threading.Lock()
        self._waiters: dict[str, deque[Waiter]] = {}
        self._promised: dict[Waiter, float] = {}  # waiter -> when it was promised a job
        # Set when the process is shutting down: waiters give up at once, so a restart
        # does not wait for every open long-poll to run out.
        self.closing = False

    @contextmanager
    def listening(self, channels: Collection[str]) -> Iterator[Waiter]:
        """Register before checking the database, so no announcement falls in between."""
        _ensure_listener()
        _ensure_ticker()
        event = Waiter()
        with self._lock:
            for channel in channels:
                self._waiters.setdefault(channel, deque()).append(event)
        try:
            yield event
        finally:
            with self._lock:
                for channel in channels:
                    queue = self._waiters.get(channel)
                    if queue is not None:
                        try:
                            queue.remove(event)
                        except ValueError:
                            pass
                        if not queue:
                            del self._waiters[channel]
                self._promised.pop(event, None)
                # Woken while it looked rather than waited: that look may have missed the job
                # it was woken for, so the wake-up goes to another waiter of its queues.
                if event.is_set() and not event.seen and not self.closing:
                    for channel in channels:
                        if channel.startswith(QUEUED):
                            self._wake(channel)

    def publish(self, channel: str) -> None:
        with self._lock:
            self._wake(channel)
            if channel.startswith(DONE):
                self._wake(any_job_done_channel())

    def promise(self, channel: str) -> Waiter | None:
        """One of this process's waiters asleep on `channel`, to be woken by `keep` once the job
        being queued is committed (None: there is none)."""
        with self._lock:
            queue = self._waiters.get(channel)
            waiter = self._next_asleep(queue, or_promised=False) if queue else None
            if waiter is not None:
                self._promised[waiter] = time.monotonic()
            return waiter

    def keep(self, waiter: Waiter) -> bool:
        """Wake a waiter promised a job, now committed. False if it has left meanwhile (it found
        another job, say): the job still needs a waiter."""
        with self._lock:
            if self._promised.pop(waiter, None) is None:
                return False
            waiter.set()
            return True

    def _wake(self, channel: str) -> None:
        queue = self._waiters.get(channel)
        if not queue:
            return
        if channel.startswith(QUEUED):
            self._wake_one(queue)  # one job, one claimer
        else:
            for event in queue:
                event.set()

    def _wake_one(self, queue: deque[Waiter]) -> None:
        waiter = self._next_asleep(queue)
        if waiter is not None:
            waiter.set()

    def _next_asleep(self, queue: deque[Waiter], *, or_promised: bool = True) -> Waiter | None:
        """The longest-waiting one still asleep, moved to the back so the next wake-up goes to
        someone else. One promised a job is taken only if no other is asleep (`or_promised`): two
        jobs would wake it once, but a job of a rolled-back transaction does not keep it deaf."""
        now = time.monotonic()
        chosen = None
        for event in queue:
            if event.is_set():
                continue
            if now - self._promised.get(event, -PROMISE_SECONDS) >= PROMISE_SECONDS:
                chosen = event
                break
            if or_promised and chosen is None:
                chosen = event  # promised: taken if no other turns up
        if chosen is not None:
            queue.remove(chosen)
            queue.append(chosen)
        return chosen

    def tick(self) -> None:
        """The safety net: the longest-sleeping waiter of each channel looks again."""
        if not self.safety_net:
            return
        with self._lock:
            for queue in self._waiters.values():
                self._wake_one(queue)

    def close(self) -> None:
        self.closing = True
        self.publish_all()

    def publish_all(self) -> None:
        """After a lost listener connection: announcements may have been missed."""
        with self._lock:
            for queue in self._waiters.values():
                for event in queue:
                    event.set()


hub = _Hub()


def _is_postgres() -> bool:
    """PostgreSQL carries wake-ups between processes (NOTIFY); SQLite is one node: the hub is enough."""
    return connection.vendor == "postgresql"


def announce(channel: str) -> None:
    """Announce `channel` once the current transaction commits (at once outside one).

    A queued job goes to a waiter of this process if it has one asleep, woken right after the
    commit; else (or if that waiter has left by then) to every process's hub."""
    if channel.startswith(QUEUED):
        waiter = hub.promise(channel)
        if waiter is not None:

            def wake_it() -> None:
                if not hub.keep(waiter):
                    _announce_to_all(channel)

            transaction.on_commit(wake_it)
            return
    _announce_to_all(channel)


def _announce_to_all(channel: str) -> None:
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [PG_CHANNEL, channel])
    else:
        transaction.on_commit(lambda: hub.publish(channel))


# --- PostgreSQL listener, one per process, started by the first waiter ---------
_listener_lock = threading.Lock()
_listener_thread: threading.Thread | None = None
_listener_stop = threading.Event()


def conninfo() -> dict[str, str | int]:
    """For a connection of its own, outside the pool: one that LISTENs, or holds a session's lock."""
    s = connection.settings_dict
    params = {"dbname": s["NAME"], "user": s["USER"], "password": s["PASSWORD"], "host": s["HOST"], "port": s["PORT"]}
    return {k: v for k, v in params.items() if v}


def _ensure_listener() -> None:
    global _listener_thread
    if not _is_postgres():
        return
    with _listener_lock:
        if _listener_thread is not None and _listener_thread.is_alive():
            return
        ready = threading.Event()
        _listener_stop.clear()
        _listener_thread = threading.Thread(
            target=_listen_forever, args=(conninfo(), ready), name="jpt-pool-listener", daemon=True
        )
        _listener_thread.start()
    # A first waiter must not register before LISTEN is in place.
    ready.wait(timeout=5)


_ticker_lock = threading.Lock()
_ticker_thread: threading.Thread | None = None


def _ensure_ticker() -> None:
    global _ticker_thread
    if _ticker_thread is not None:
        return
    with _ticker_lock:
        if _ticker_thread is None:
            _ticker_thread = threading.Thread(target=_tick_forever, name="jpt-wakeup-tick", daemon=True)
            _ticker_thread.start()


def _tick_forever() -> None:
    while True:
        time.sleep(settings.JPT_WAKEUP_POLL_SECONDS)
        hub.tick()


def stop_listener() -> None:
    """For tests and shutdown: close the listener's connection (it would hold the database open)."""
    _listener_stop.set()
    if _listener_thread is not None:
        _listener_thread.join(timeout=5)


def _listen_forever(params: dict[str, str | int], ready: threading.Event) -> None:
    backoff = 0.5
    while not _listener_stop.is_set():
        try:
            with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
                conn.execute(f"LISTEN {PG_CHANNEL}")
                ready.set()
                hub.publish_all()
                backoff = 0.5
                while not _listener_stop.is_set():
                    for notify in conn.notifies(timeout=1):
                        hub.publish(notify.payload)
        except Exception:  # a listener must outlive database restarts
            log.warning("pool listener lost its connection; retrying in %.1f s", backoff, exc_info=True)
            ready.set()
            time.sleep(backoff)
            backoff = min(backoff * 2, 10)

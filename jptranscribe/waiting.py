"""Requests that wait (a worker's long-polled claim, a transcribe call waiting for its text)
without holding a thread while they wait.

A waiting operation is written once, as a generator of steps (`Steps`): it does its database
work, then yields a `Wait` (sleep until this `Waiter` is woken, or this many seconds pass) and
is resumed with whether it was woken. Two drivers run the same steps:

- `run_in_thread` sleeps in the calling thread (management commands, tests, any sync caller);
- `until_answered` (the ASGI handler, for a view mounted with `waiting_view`) runs each step in
  a thread (`RequestCalls`) and awaits the wake-up on the event loop in between, holding
  neither a thread nor a database connection. The view itself stays sync: it calls `answer()`,
  which then returns a `Parked` response after the first step instead of sleeping.

The rules (what to look for, when to give up, places to wait) stay in the services' steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection
from django.http import HttpResponseBase
from django.utils.cache import patch_vary_headers
from rest_framework.response import Response

T = TypeVar("T")

# Set on a request by the ASGI handler (jptranscribe/asgi.py) for a `waiting_view`: its `answer()`
# parks instead of sleeping.
WAITS_ON_LOOP = "jpt_waits_on_loop"
# Set on every request by the ASGI handler: when it arrived (time.monotonic()).
ARRIVED = "jpt_arrived"


def queued_seconds(request: Any) -> float:
    """How long the request waited for a thread after it arrived (0 where no handler stamped it):
    over a second or so, the server is working through a burst."""
    arrived = getattr(request, ARRIVED, None)
    return 0.0 if arrived is None else max(0.0, time.monotonic() - arrived)


class Waiter:
    """A waiting request's wake-up: set from any thread (the hub's listener, a request that
    ended a job), awaited in a thread (`wait`) or on an event loop (`wait_async`)."""

    __slots__ = ("_event", "_kick", "_loop", "seen")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._kick: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Whether a wait returned woken: a wake-up that came while nobody waited (the request was
        # looking in the database meanwhile) may have been missed by that look.
        self.seen = False

    def set(self) -> None:
        self._event.set()
        loop = self._loop  # read after the event is set: see wait_async
        if loop is not None:
            kick = self._kick
            try:
                loop.call_soon_threadsafe(kick.set)  # type: ignore[union-attr]
            except RuntimeError:  # its loop has closed: nobody awaits it any more
                pass

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        self.seen = self._event.wait(timeout)
        return self.seen

    async def wait_async(self, timeout: float) -> bool:
        """Woken (True) or `timeout` passed (False), without a thread."""
        if self._kick is None:
            self._kick = asyncio.Event()
        self._kick.clear()
        # The loop is known before the event is read: a set() after this read kicks the loop.
        self._loop = asyncio.get_running_loop()
        if not self._event.is_set():
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._kick.wait()
            except TimeoutError:
                pass
        self.seen = self._event.is_set()
        return self.seen


@dataclass
class Wait:
    """What a step asks of its driver: sleep until `waiter` is woken or `timeout` seconds pass."""

    waiter: Waiter
    timeout: float
    # What is waited for (a transcribe call's job), for a view to show while it waits.
    subject: Any = None


# A waiting operation: yields each Wait, is sent whether it was woken, returns its result.
Steps = Generator[Wait, bool, T]


def release_connection() -> None:
    """Hand the database connection back before a wait (to the pool, on PostgreSQL).

    Inside a transaction (a test's, say) the connection must stay."""
    if not connection.in_atomic_block:
        connection.close()


def run_in_thread(steps: Steps[T]) -> T:
    """Run `steps` to their end in this thread, sleeping here at each wait."""
    try:
        wait = next(steps)
        while True:
            release_connection()
            wait = steps.send(wait.waiter.wait(wait.timeout))
    except StopIteration as done:
        return done.value


def answer(request: Any, steps: Steps[T], render: Callable[[T], HttpResponseBase]) -> HttpResponseBase:
    """For a sync DRF view: the answer `render` makes of the steps' result. Under the ASGI server
    (a view mounted with `waiting_view`) a wait does not sleep here: the first step runs now, and
    if it must wait the view answers a `Parked` response, which the server carries on with
    (`until_answered`)."""
    if not getattr(request, WAITS_ON_LOOP, False):
        return render(run_in_thread(steps))
    try:
        wait = next(steps)
    except StopIteration as done:
        return render(done.value)
    return Parked(steps, wait, render)


class Parked(Response):
    """A view's answer that is still waiting. It leaves the view and the middleware as any answer
    (DRF's renderer and headers, the session saved, the security headers), then the server awaits
    its wake-ups and resumes its steps (`until_answered`); their result becomes the real answer
    through the same view (`render`, its exception handler, its headers), with the headers and
    cookies the middleware gave this one."""

    def __init__(self, steps: Steps[Any], wait: Wait, make_answer: Callable[[Any], HttpResponseBase]) -> None:
        super().__init__(None)
        self.steps, self.wait, self.make_answer = steps, wait, make_answer
        self.then: list[Callable[[HttpResponseBase], None]] = []  # applied to the real answer

    def resume(self, woken: bool) -> HttpResponseBase:
        """The next step, in a thread: this again if it waits again, else the real answer."""
        context: dict[str, Any] = getattr(self, "renderer_context", {})  # set by the view's finalize_response
        view, request = context["view"], context["request"]
        try:
            self.wait = self.steps.send(woken)
        except StopIteration as done:
            try:
                response = self.make_answer(done.value)
            except Exception as exc:  # noqa: BLE001 - the view's exception handler answers it, as in dispatch
                response = view.handle_exception(exc)
        except Exception as exc:  # noqa: BLE001 - the same
            response = view.handle_exception(exc)
        else:
            return self
        return self._as_answered(view.finalize_response(request, response))

    def _as_answered(self, answer: HttpResponseBase) -> HttpResponseBase:
        for then in self.then:
            then(answer)
        render = getattr(answer, "render", None)
        if callable(render):
            answer = render()
        for header, value in self.items():
            if header.lower() not in ("content-length", "content-type", "vary") and not answer.has_header(header):
                answer[header] = value
        if self.has_header("Vary"):
            patch_vary_headers(answer, [v.strip() for v in self["Vary"].split(",")])
        answer.cookies.update(self.cookies)
        closers = self._resource_closers  # type: ignore[attr-defined]  # the request's own clean-up
        answer._resource_closers.extend(closers)  # type: ignore[attr-defined]
        closers.clear()
        return answer


async def until_answered(
    response: HttpResponseBase,
    in_thread: RequestCalls,
    finish: Callable[[HttpResponseBase], HttpResponseBase],
) -> HttpResponseBase:
    """The real answer of a response that may be `Parked`: its waits awaited on the event loop
    (holding no thread), its steps resumed in a thread (`in_thread`, the request's way there),
    the real answer passed through `finish` in the same call. If the request is cancelled
    meanwhile (its client went away, or the server stops), its steps are closed, giving back
    their places."""
    try:
        while isinstance(response, Parked):
            woken = await response.wait.waiter.wait_async(response.wait.timeout)
            call = in_thread.ahead_of_the_lane if woken else in_thread
            response = await call(_resumed, response, woken, finish)
    finally:
        if isinstance(response, Parked):
            await in_thread(response.steps.close)
    return response


def _resumed(parked: Parked, woken: bool, finish: Callable[[HttpResponseBase], HttpResponseBase]) -> HttpResponseBase:
    response = parked.resume(woken)
    return response if isinstance(response, Parked) else finish(response)


def waiting_view(view: Callable[..., HttpResponseBase], *, in_lane: bool = False) -> Callable[..., HttpResponseBase]:
    """Mount a view whose operation may wait (see `answer`): under the ASGI server it is called
    with WAITS_ON_LOOP set and may answer `Parked`; elsewhere (the test client, WSGI) it waits in
    its thread. `in_lane`: its requests mostly wait and may come by the thousand at once (the
    volunteers' claims), so their calls take turns in the waiting lane (`waiting_lane`)."""

    @functools.wraps(view)
    def parking(request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return view(request, *args, **kwargs)

    parking.parks = True  # type: ignore[attr-defined]
    parking.in_lane = in_lane  # type: ignore[attr-defined]
    return parking


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _shared_threads() -> ThreadPoolExecutor:
    global _threads
    if _threads is None:
        with _threads_lock:
            if _threads is None:
                _threads = ThreadPoolExecutor(settings.JPT_WEB_THREADS, thread_name_prefix="jpt-sync")
    return _threads


_lanes: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def waiting_lane() -> asyncio.Semaphore:
    """At most JPT_WAITING_LANE_THREADS calls of volunteers' claims run at once in this process (per
    event loop); the others queue on the loop. Five thousand volunteers claiming again at once
    (after a restart, say) would otherwise queue five thousand calls in the threads' line, and a
    quick request behind them all: it now waits behind a few at most, and the claims' own pace is
    the CPU's either way."""
    loop = asyncio.get_running_loop()
    lane = _lanes.get(loop)
    if lane is None:
        for gone in [other for other in _lanes if other.is_closed()]:
            del _lanes[gone]
        lane = _lanes[loop] = asyncio.Semaphore(max(1, settings.JPT_WAITING_LANE_THREADS))
    return lane


def _then_release_connection(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """One sync call of a request; its database connection is handed back when the call returns
    unless the connection is to be kept (SQLite's, per thread): a request waiting for its next call
    must not hold a pooled connection, nor may its next call expect the same thread."""
    try:
        return fn(*args, **kwargs)
    finally:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class RequestCalls:
    """One request's way from the event loop to its sync code (the middleware and the view, then
    each resumed step of a parked view): each call runs on one of the process's JPT_WEB_THREADS
    shared threads, queued in order of arrival, in the request's own context (its context
    variables carry over from one call to the next, as in a thread of its own). A waiting request
    holds no thread, and a burst of a thousand requests is not a thousand threads taking turns at
    the GIL and at the database pool. The calls run one after the other; none keeps a database
    connection for the next.

    Django's own handler gets there through asgiref's `sync_to_async`, which costs several times
    as much per call, and takes three such calls per request."""

    __slots__ = ("context", "lane")

    def __init__(self) -> None:
        self.context = contextvars.copy_context()
        self.lane: asyncio.Semaphore | None = None

    def in_waiting_lane(self) -> None:
        """This request's calls take turns in the process's waiting lane (`waiting_lane`), so they
        never fill every thread."""
        self.lane = waiting_lane()

    async def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self.lane is None:
            return await self._call(fn, *args, **kwargs)
        async with self.lane:
            return await self._call(fn, *args, **kwargs)

    async def ahead_of_the_lane(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A call that skips the waiting lane: a claim's step woken by its wake-up (a job for it) is
        one per job, never a burst, and is what the pool waits for."""
        return await self._call(fn, *args, **kwargs)

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        done = _shared_threads().submit(self.context.run, _then_release_connection, fn, *args, **kwargs)
        try:
            return await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            # A call under way goes on in its thread: the request's next call (closing a parked
            # view's steps, say) must not start beside it.
            while not done.cancel() and not done.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wrap_future(done)
            raise

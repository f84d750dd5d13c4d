"""Requests that wait (a worker's long-polled claim, a transcribe call waiting for its text)
without holding a thread while they wait.

A waiting operation is written once, as a generator of steps (`Steps`): it does its database
work, then yields a `Wait` (sleep until this `Waiter` is woken, or this many seconds pass) and
is resumed with whether it was woken. Two drivers run the same steps:

- `run_in_thread` sleeps in the calling thread (management commands, tests, any sync caller);
- `waiting_view` (around a sync DRF view, under the ASGI server) runs each step in a thread
  through `sync_to_async` and awaits the wake-up on the event loop in between, holding neither a
  thread nor a database connection. The view itself stays sync: it calls `answer()`, which in
  that case returns a `Parked` response after the first step instead of sleeping.

The rules (what to look for, when to give up, places to wait) stay in the services' steps.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpResponseBase
from rest_framework.response import Response

T = TypeVar("T")

# Set on a request by `waiting_view`: its view's `answer()` parks instead of sleeping.
WAITS_ON_LOOP = "jpt_waits_on_loop"


class Waiter:
    """A waiting request's wake-up: set from any thread (the hub's listener, a request that
    ended a job), awaited in a thread (`wait`) or on an event loop (`wait_async`)."""

    __slots__ = ("_event", "_kick", "_loop")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._kick: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float) -> bool:
        """Woken (True) or `timeout` passed (False), without a thread."""
        if self._kick is None:
            self._kick = asyncio.Event()
        self._kick.clear()
        # The loop is known before the event is read: a set() after this read kicks the loop.
        self._loop = asyncio.get_running_loop()
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._kick.wait()
        except TimeoutError:
            pass
        return self._event.is_set()


@dataclass
class Wait:
    """What a step asks of its driver: sleep until `waiter` is woken or `timeout` seconds pass."""

    waiter: Waiter
    timeout: float


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
    """For a sync DRF view: the answer `render` makes of the steps' result. Under `waiting_view` a
    wait does not sleep here: the first step runs now, and if it must wait the view answers a
    `Parked` response, which `waiting_view` carries on with."""
    if not getattr(request, WAITS_ON_LOOP, False):
        return render(run_in_thread(steps))
    try:
        wait = next(steps)
    except StopIteration as done:
        return render(done.value)
    return Parked(steps, wait, render)


class Parked(Response):
    """A view's answer that is still waiting: DRF finalises it as any answer (its renderer, the
    view's headers), then `waiting_view` awaits its wake-ups and resumes its steps; their result
    becomes the real answer through the same view (`render`, its exception handler, headers)."""

    def __init__(self, steps: Steps[Any], wait: Wait, make_answer: Callable[[Any], HttpResponseBase]) -> None:
        super().__init__(None)
        self.steps, self.wait, self.make_answer = steps, wait, make_answer

    def resume(self, woken: bool) -> HttpResponseBase:
        """The next step, in a thread: this again if it waits again, else the view's answer."""
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
            release_connection()
            return self
        return view.finalize_response(request, response)


def _first_step(view: Callable[..., HttpResponseBase], request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
    setattr(request, WAITS_ON_LOOP, True)
    response = view(request, *args, **kwargs)
    if isinstance(response, Parked):
        release_connection()
    return response


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _shared_threads() -> ThreadPoolExecutor:
    global _threads
    if _threads is None:
        with _threads_lock:
            if _threads is None:
                _threads = ThreadPoolExecutor(settings.JPT_WEB_THREADS, thread_name_prefix="jpt-sync")
    return _threads


def _then_release_connection(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """One sync call of a request; its database connection is handed back when the call returns
    unless the connection is to be kept (SQLite's, per thread): a request waiting for its next call
    must not hold a pooled connection, nor may its next call expect the same thread."""
    try:
        return fn(*args, **kwargs)
    finally:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class RequestThreads(Executor):
    """Where Django's ASGI handler runs a request's sync code. Django gives each request a thread
    of its own (asgiref's ThreadSensitiveContext: a new one-thread executor per request, and a
    second thread to join it at the end), kept for the whole request, waits included. Here every
    request's calls share the process's JPT_WEB_THREADS threads, queued in order of arrival: a
    waiting request holds none, and a burst of a thousand requests is not a thousand threads
    taking turns at the GIL and at the database pool. A request's calls run one after the other
    (each is awaited), on whichever thread is free; none keeps a database connection between them."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return _shared_threads().submit(_then_release_connection, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The threads are the process's, not the request's."""


_request_threads = RequestThreads()


@contextmanager
def shared_threads_for_this_request() -> Iterator[None]:
    """Within Django's ASGI handler (its ThreadSensitiveContext for this request): the request's
    sync code runs on `RequestThreads`, which are left in place when it ends."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        yield
        return
    SyncToAsync.context_to_thread_executor[context] = _request_threads
    try:
        yield
    finally:
        SyncToAsync.context_to_thread_executor.pop(context, None)


def waiting_view(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """An async view around a sync one whose operation may wait (see `answer`): each step runs in
    a thread, each wait is awaited on the event loop."""

    @functools.wraps(view)
    async def waiting(request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await sync_to_async(_first_step)(view, request, *args, **kwargs)
        try:
            while isinstance(response, Parked):
                woken = await response.wait.waiter.wait_async(response.wait.timeout)
                response = await sync_to_async(response.resume)(woken)
        finally:
            if isinstance(response, Parked):  # the client went away (or the server is stopping)
                await sync_to_async(response.steps.close)()  # its places and wake-ups are given back
        return response

    return waiting

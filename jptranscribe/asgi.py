"""The ASGI application the server runs (gunicorn with uvicorn workers: `gunicorn.conf.py`).

Django serves every request: the middleware and the sync view run in one call on one of the
process's JPT_WEB_THREADS threads; views that wait (`jptranscribe.waiting.waiting_view`: a worker's
claim, a transcribe call) await their wake-up on the event loop, holding no thread meanwhile.
Around Django's ASGI handler, this module adds the per-process start and stop hooks
(`jptranscribe.lifecycle`), a cap on how much of a request body is read before the view runs, and
the cycle collector's settings for thousands of parked requests.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jptranscribe.settings")

import asyncio
import contextlib
import gc
import signal
import threading
import time

import django

django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import FileResponse  # noqa: E402
from django.urls import Resolver404, get_resolver, set_script_prefix  # noqa: E402

from jptranscribe import lifecycle, waiting  # noqa: E402


def body_cap() -> int:
    """The most of a request body read before its view runs: the largest any view takes (an
    upload and its form fields). A view refuses a longer one by its Content-Length (413 for an
    upload), so the rest is never read; under WSGI the upload handler stopped reading there too."""
    return settings.JPT_MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class _CappedBody:
    """`receive` for Django's handler: the body up to `body_cap()` (all of it when it fits), then
    only the client's disconnect, which Django listens for while the view runs."""

    def __init__(self, scope, receive):
        self.receive = receive
        self.left = body_cap()
        self.in_body = True
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.left:
            self.left = 0  # read none of it: the view refuses it by its length

    async def __call__(self):
        if not self.in_body:
            while True:  # a body past the cap is never handed on (nor read, unless the client goes on)
                message = await self.receive()
                if message["type"] != "http.request":
                    return message
        if self.left <= 0:
            self.in_body = False
            return {"type": "http.request", "body": b"", "more_body": False}
        message = await self.receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")[: self.left]
            self.left -= len(body)
            more = message.get("more_body", False) and self.left > 0
            self.in_body = more
            return {"type": "http.request", "body": body, "more_body": more}
        return message


def _resolved(request) -> tuple[bool, bool]:
    """Resolve the request's view once, for the handler and for Django (`Handler.resolve_request`),
    and tell whether it may wait, and whether its calls take the waiting lane
    (`jptranscribe.waiting.waiting_view`). An unknown path is left to Django, which answers 404."""
    try:
        match = get_resolver().resolve(request.path_info)
    except Resolver404:
        return False, False
    request.resolver_match = match
    return getattr(match.func, "parks", False), getattr(match.func, "in_lane", False)


class Handler(ASGIHandler):
    """Django's ASGI handler, with the middleware and the view run as under WSGI: the whole of
    them, with the request's start and end signals, in one call to a thread (`RequestCalls`).
    Django's own handler makes three calls to a thread through asgiref for each request, runs its
    async middleware chain (a hop to a thread and back for every middleware hook), and races every
    request against its client's disconnect in a task of its own.

    A view that may wait answers `Parked` after its first step; the handler awaits its wake-ups on
    the event loop and resumes it (`waiting.until_answered`), holding no thread meanwhile, and
    only such a request listens for its client going away (its steps are then closed, giving back
    their places). A quick request runs to its end whatever the client does, as under WSGI."""

    def __init__(self):
        # Not ASGIHandler's __init__: it builds Django's async middleware chain, which this
        # handler never runs.
        self.load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, _CappedBody(scope, receive), send)

    async def handle(self, scope, receive, send):
        arrived = time.monotonic()
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        in_thread = waiting.RequestCalls()  # after the prefix is set: the request's calls see it
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                assert error_response is not None
                await self.send_response(error_response, send)
                await in_thread(error_response.close)
                return
            setattr(request, waiting.ARRIVED, arrived)
            parks, in_lane = _resolved(request)
            if parks:
                setattr(request, waiting.WAITS_ON_LOOP, True)
            if in_lane:
                in_thread.in_waiting_lane()
            first = response = await in_thread(self._respond, scope, request)
            if isinstance(response, waiting.Parked):
                response = await self._answered_unless_gone(response, in_thread, receive)
                if response is None:  # the client went away; the steps gave their places back
                    await in_thread(signals.request_finished.send, sender=self.__class__)
                    _unlink(request, first)
                    return
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:  # sent bit by bit: closed once sent, or once sending failed
                    await in_thread(response.close)
            _unlink(request, first, response)
        finally:
            body_file.close()

    def resolve_request(self, request):
        """The view `_resolved` found (no middleware here sets a urlconf of its own)."""
        if request.resolver_match is not None and not hasattr(request, "urlconf"):
            return request.resolver_match
        return super().resolve_request(request)

    def _respond(self, scope, request):
        """In a thread: the request's answer, closed (its end signal sent) unless it is still
        to be sent bit by bit or still waits."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        return self._closed_when_whole(self.get_response(request))

    def _closed_when_whole(self, response):
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # the server chunks it further
        if not response.streaming and not isinstance(response, waiting.Parked):
            response.close()
        return response

    async def _answered_unless_gone(self, parked, in_thread, receive):
        """The parked view's real answer (closed, as `_respond`'s), or None if its client went
        away first."""
        gone = asyncio.create_task(self.listen_for_disconnect(receive))
        answer = asyncio.create_task(waiting.until_answered(parked, in_thread, self._closed_when_whole))
        await asyncio.wait((gone, answer), return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            gone.cancel()
            return answer.result()
        answer.cancel()  # its steps are closed, giving back their places
        with contextlib.suppress(asyncio.CancelledError, RequestAborted):
            await answer
        with contextlib.suppress(RequestAborted, AssertionError):
            gone.result()
        return None


def _unlink(request, *responses) -> None:
    """Drop what a request's objects hold of each other once it has been answered.

    They hold one another in cycles (DRF's view, its request and response; Django's request and
    its messages and `auser`), which reference counting cannot free: every request left about a
    hundred objects for the cycle collector, and a collection that freed those of a few hundred
    claims paused the process for 0.1-0.6 s with thousands of claims parked. Unlinked, they go as
    soon as the request ends."""
    linked = [request]
    for response in responses:
        context = getattr(response, "renderer_context", None) or {}
        linked += [response, context.get("view"), context.get("request")]
    for obj in linked:
        if obj is not None:
            vars(obj).clear()


django_application = Handler()
_stopping = threading.Event()


def _stop_hooks_on_signals() -> None:
    """On SIGTERM (or SIGINT) the stop hooks run at once (open long-polls answer "no job", waiting
    transcribe calls 202), then the server's own handler stops it gracefully, which waits for the
    requests under way. The hooks run in a thread of their own: a signal handler runs between two
    bytecodes of the event loop's thread, which may hold the locks they take. (A server run in
    another thread, as a test may, takes no signals.)"""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(signum, frame, previous=previous):
            if not _stopping.is_set():
                _stopping.set()
                threading.Thread(target=lifecycle.stopping, name="jpt-stopping", daemon=True).start()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signum, handler)


# The cycle collector's own schedule does not fit thousands of parked requests. It collects the
# youngest objects once allocations outnumber frees by its threshold, and every object freed counts,
# old ones included: while the parked claims that end (their objects long since old) free about as
# many as the new ones make, the young generation grew between collections to 500,000 objects, and
# one collection of it paused the process for 0.3-0.6 s. So the young generations are collected on a
# timer, a fraction of a second's objects at a time, and a full collection (every object, a long
# pause with thousands parked) runs every few minutes, for cycles that outlived the young ones.
YOUNG_COLLECTION_SECONDS = 0.25
FULL_COLLECTION_SECONDS = 300
_collector: asyncio.Task | None = None  # kept: the event loop holds its tasks only weakly


def _collect_on_a_timer() -> None:
    """What the process made to start (about 100,000 objects: modules, URL patterns, models) is never
    garbage: left out of every collection from now on. Then the timer takes over the collections."""
    global _collector
    gc.collect()
    gc.freeze()
    gc.disable()
    _collector = asyncio.create_task(_collections())


async def _collections() -> None:
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(YOUNG_COLLECTION_SECONDS)
        if time.monotonic() - last_full >= FULL_COLLECTION_SECONDS:
            gc.collect()
            last_full = time.monotonic()
        else:
            gc.collect(1)


async def _lifespan(receive, send) -> None:
    """Once per server process: the apps' start hooks when it starts serving (the webhook delivery
    loop, the translation model), the stop hooks when it is told to stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await asyncio.to_thread(lifecycle.started)
                _stop_hooks_on_signals()
                _collect_on_a_timer()
            except Exception as exc:  # noqa: BLE001 - the server logs it and stops the process
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if not _stopping.is_set():  # stopped without a signal (e.g. by max_requests)
                _stopping.set()
                await asyncio.to_thread(lifecycle.stopping)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        await django_application(scope, receive, send)

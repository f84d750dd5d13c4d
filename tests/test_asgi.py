"""jptranscribe.asgi, driven in this process as the ASGI server drives it: what an answered
request leaves behind, and the cycle collector's timer."""

import asyncio
import gc
import json

import pytest

from jptranscribe import asgi
from tests.helpers import mint_caller

LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


async def served(method: str, path: str, body: bytes = b"", key: str | None = None) -> tuple[int, bytes]:
    """(status, body) of one request through the ASGI application."""
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("198.51.100.7", 40000), "server": ("testserver", 80),
    }  # fmt: skip
    asked, never = [], asyncio.Event()

    async def receive():
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the client stays connected

    sent = []

    async def send(message):
        sent.append(message)

    await asgi.application(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def no_automatic_collections():
    """Garbage in cycles stays where gc can count it (gc.garbage) until the test looks."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    gc.set_debug(0)
    gc.garbage.clear()
    if enabled:
        gc.enable()


def cyclic_garbage() -> int:
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    found = len(gc.garbage)
    gc.set_debug(0)
    gc.garbage.clear()
    return found


@pytest.mark.django_db(transaction=True)
def test_answered_requests_leave_nothing_for_the_cycle_collector(settings, no_automatic_collections):
    """With thousands of claims parked, each collection that freed answered requests' cycles
    paused the process for a tenth of a second or more; reference counting frees them at once."""
    settings.CACHES = LOCAL_CACHE
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 0
    alice = mint_caller()
    claim = json.dumps({"worker_id": "w1", "wait_seconds": 0.05}).encode()
    heartbeat = json.dumps({"worker_id": "w1", "name": "w", "engine": "vosk", "model": "m", "version": "1"}).encode()

    async def requests():
        answers = []
        for _ in range(10):
            answers.append(await served("GET", "/v1/health"))
            answers.append(await served("POST", "/v1/worker/heartbeat", heartbeat, key=alice.raw_key))  # registers
            answers.append(await served("POST", "/v1/pool/claim", claim, key=alice.raw_key))  # parks, then no job
        return answers

    asyncio.run(requests())  # the first requests make what every later one reuses
    cyclic_garbage()
    answers = asyncio.run(requests())

    assert [status for status, _ in answers] == [200] * 30
    assert json.loads(answers[-1][1]) == {"job": None}
    assert cyclic_garbage() < 30  # one per request would be 30; it was about 100 each


def test_the_collector_runs_on_a_timer_once_the_server_has_started(monkeypatch):
    monkeypatch.setattr(asgi, "YOUNG_COLLECTION_SECONDS", 0.01)
    collected = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or real_collect(generation))
    monkeypatch.setattr(gc, "freeze", lambda: None)
    enabled = gc.isenabled()

    async def started():
        asgi._collect_on_a_timer()
        await asyncio.sleep(0.2)
        asgi._collector.cancel()
        return gc.isenabled()

    try:
        assert asyncio.run(started()) is False  # the collector's own schedule is off
    finally:
        if enabled:
            gc.enable()
    assert collected[0] == 2  # all that start-up made, once, before it is set aside
    assert collected[1:] and set(collected[1:]) == {1}  # then only the young generations, often

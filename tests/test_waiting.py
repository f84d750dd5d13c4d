"""jptranscribe.waiting: wake-ups on the event loop, and sync code taking turns."""

import asyncio
import threading
import time

import pytest

from jptranscribe import waiting


def test_a_waiter_set_from_another_thread_wakes_the_event_loop_at_once():
    waiter = waiting.Waiter()

    async def wait():
        threading.Timer(0.05, waiter.set).start()
        started = time.monotonic()
        woken = await waiter.wait_async(5)
        return woken, time.monotonic() - started

    woken, took = asyncio.run(wait())
    assert woken and took < 1


def test_a_waiter_nobody_sets_times_out():
    assert asyncio.run(waiting.Waiter().wait_async(0.05)) is False


def test_steps_run_in_a_thread_sleep_until_woken():
    waiter = waiting.Waiter()

    def steps():
        woken = yield waiting.Wait(waiter, 5)
        return "woken" if woken else "timed out"

    threading.Timer(0.05, waiter.set).start()
    assert waiting.run_in_thread(steps()) == "woken"


def test_requests_sync_calls_share_a_few_threads_in_order_of_arrival(settings, monkeypatch):
    settings.JPT_WEB_THREADS = 2
    monkeypatch.setattr(waiting, "_threads", None)
    release = threading.Event()
    running, most, order = [0], [0], []
    lock = threading.Lock()

    def call(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            order.append(i)
        release.wait(5)
        with lock:
            running[0] -= 1

    async def requests():
        calls = [asyncio.ensure_future(waiting.RequestCalls()(call, i)) for i in range(6)]
        await asyncio.sleep(0.2)
        threads = threading.active_count() - before
        release.set()
        await asyncio.gather(*calls)
        return threads

    before = threading.active_count()
    assert asyncio.run(requests()) == 2, "two threads, however many calls wait"
    assert most[0] == 2
    assert set(order[:2]) == {0, 1} and sorted(order) == list(range(6)), "the first to arrive ran first"
    waiting._threads.shutdown()


def test_a_request_that_goes_away_takes_back_its_queued_call_and_waits_out_a_running_one(settings, monkeypatch):
    """One thread: a request cancelled while its call runs is answered only once that call has
    ended (its next call never runs beside it); a call still queued when its request goes away
    never runs."""
    settings.JPT_WEB_THREADS = 1
    monkeypatch.setattr(waiting, "_threads", None)
    release, events = threading.Event(), []

    def slow():
        events.append("slow started")
        release.wait(5)
        events.append("slow ended")

    async def requests():
        first = waiting.RequestCalls()
        running = asyncio.ensure_future(first(slow))
        queued = asyncio.ensure_future(waiting.RequestCalls()(events.append, "queued call ran"))
        await asyncio.sleep(0.1)
        queued.cancel()
        running.cancel()
        await asyncio.sleep(0.1)
        still_running = not running.done()
        release.set()
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        await first(events.append, "next call")
        return still_running

    assert asyncio.run(requests()), "the cancelled request waited for its call under way"
    assert events == ["slow started", "slow ended", "next call"]
    waiting._threads.shutdown()


def test_claims_take_turns_in_a_lane_and_leave_threads_for_quick_requests(settings, monkeypatch):
    """Four threads, a lane of one: a burst of volunteers' claims runs one call at a time, a quick
    request beside them is not queued behind the burst, and a woken claim's step skips the lane."""
    settings.JPT_WEB_THREADS, settings.JPT_WAITING_LANE_THREADS = 4, 1
    monkeypatch.setattr(waiting, "_threads", None)
    release = threading.Event()
    running = {"claim": 0}
    most, started = [0], []
    lock = threading.Lock()

    def claim_call():
        with lock:
            running["claim"] += 1
            most[0] = max(most[0], running["claim"])
        release.wait(5)
        with lock:
            running["claim"] -= 1

    def quick(name):
        started.append(name)

    def laned():
        calls = waiting.RequestCalls()
        calls.in_waiting_lane()
        return calls

    async def requests():
        claims = [asyncio.ensure_future(laned()(claim_call)) for _ in range(20)]
        await asyncio.sleep(0.1)
        await asyncio.wait_for(waiting.RequestCalls()(quick, "health"), 2)
        await asyncio.wait_for(laned().ahead_of_the_lane(quick, "woken claim"), 2)
        release.set()
        await asyncio.gather(*claims)

    asyncio.run(requests())
    assert started == ["health", "woken claim"], "neither waited for the twenty claims"
    assert most[0] == 1, "the claims ran one at a time"
    waiting._threads.shutdown()

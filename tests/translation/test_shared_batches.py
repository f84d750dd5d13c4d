"""Concurrent requests sharing model calls (SharedBatches), with a stand-in for the model.

Threads are ordered with events, never with sleeps: a test waits until a thread is parked
in SharedBatches' condition (from there only a finished call can move it) or until the
model has been called, and where the order in which waiting threads wake matters, the test
chooses it and checks each order."""
import threading

import pytest

from translation.engine import SharedBatches

TIMEOUT = 5  # seconds; reached only when a test fails


class GatedModel:
    """Answers each piece with its own text; the first call waits until the test opens the gate.
    It notes each call's pieces, whether it ran alone, and the thread that made it."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls = []
        self.alone = []
        self.callers = []
        self._called = threading.Condition()

    def run(self, pieces, alone):
        with self._called:
            self.calls.append(pieces)
            self.alone.append(alone)
            self.callers.append(threading.current_thread().name)
            first = len(self.calls) == 1
            self._called.notify_all()
        if first:
            assert self.gate.wait(TIMEOUT), "the test never opened the gate"
        if any(piece == ["boom"] for piece in pieces):
            raise RuntimeError("the model failed")
        return ["".join(piece).upper() for piece in pieces]

    def until_called(self, times):
        with self._called:
            assert self._called.wait_for(lambda: len(self.calls) >= times, TIMEOUT), \
                f"the model was called {len(self.calls)} times, not {times}: {self.calls}"


class WatchedCondition(threading.Condition):
    """SharedBatches' condition, through which a test sees which threads are parked in it, and
    can make a thread, when next woken, give way to the others until something has happened."""

    def __init__(self):
        super().__init__()
        self.parked: set[str] = set()
        self.holds = {}  # thread name -> a call that returns when that thread may go on
        self._seen = threading.Condition()

    def wait(self, timeout=None):
        name = threading.current_thread().name
        with self._seen:
            self.parked.add(name)  # while this thread holds the lock until it waits: nothing can move
            self._seen.notify_all()
        try:
            woken = super().wait(timeout)
        finally:
            with self._seen:
                self.parked.discard(name)
        hold = self.holds.pop(name, None)
        if hold is not None:  # woken, but let the other threads have the lock first
            self.release()
            try:
                hold()
            finally:
                self.acquire()
        return woken

    def until_parked(self, name):
        with self._seen:
            assert self._seen.wait_for(lambda: name in self.parked, TIMEOUT), \
                f"{name} never waited for a slot (parked: {sorted(self.parked)})"


def watched(model, *, slots, max_pieces):
    shared = SharedBatches(model.run, slots=slots, max_pieces=max_pieces)
    shared._changed = WatchedCondition()  # before any thread uses it
    return shared


def start(shared, pieces, results):
    """Translates `pieces` in a thread named after the first piece, which names the result."""
    name = pieces[0][0]

    def call():
        try:
            results[name] = shared.translate(pieces)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[name] = exc

    thread = threading.Thread(target=call, name=name, daemon=True)
    thread.start()
    return thread


def queue_behind_a_held_call(shared, model, requests, results):
    """"first" runs and is held at the model's gate; then `requests` start one after another,
    each parked waiting for a slot before the next starts, so they wait in this order."""
    threads = [start(shared, [["first"]], results)]
    model.until_called(1)
    for pieces in requests:
        threads.append(start(shared, pieces, results))
        shared._changed.until_parked(pieces[0][0])
    return threads


def open_gate(model, threads):
    model.gate.set()
    for thread in threads:
        thread.join(2 * TIMEOUT)  # longer than the model's own waits, so their failures show
        assert not thread.is_alive(), f"{thread.name} is still waiting"


def test_a_lone_request_runs_at_once_in_its_own_call():
    model = GatedModel()
    model.gate.set()
    shared = SharedBatches(model.run, slots=2, max_pieces=64)
    assert shared.translate([["a"], ["b"]]) == ["A", "B"]
    assert model.calls == [[["a"], ["b"]]] and shared.calls == 1
    assert model.alone == [True], "with nothing else to do, it may use every core"


def test_a_lone_call_takes_every_slot_so_newcomers_wait_for_it():
    model = GatedModel()
    shared = watched(model, slots=2, max_pieces=64)
    results = {}
    # b and c are parked waiting for a slot, where only a finished call can wake them: had
    # the lone call left the second slot free, b would have run instead of waiting.
    threads = queue_behind_a_held_call(shared, model, [[["b"]], [["c"]]], results)
    assert len(model.calls) == 1, "a second slot is not free while a lone call runs"
    open_gate(model, threads)
    assert model.calls[1:] == [[["b"], ["c"]]] and model.alone == [True, True]
    assert results == {"first": ["FIRST"], "b": ["B"], "c": ["C"]}


@pytest.mark.parametrize("woken_first", ["b", "c"])
def test_calls_made_while_others_wait_run_on_a_slot_each(woken_first):
    """b and c wait behind a lone call, too big to share one. When it ends, whichever of their
    threads takes the lock first runs the oldest, b; the other runs c on the second slot at the
    same time, also when that other is b's own thread, whose request is already running."""

    class BothAtOnce(GatedModel):
        """b's call lasts until c's has started: the two overlap, as under load."""

        def run(self, pieces, alone):
            result = super().run(pieces, alone)
            if pieces == [["b"]]:
                self.until_called(3)
            return result

    model = BothAtOnce()
    shared = watched(model, slots=2, max_pieces=1)
    results = {}
    threads = queue_behind_a_held_call(shared, model, [[["b"]], [["c"]]], results)
    other = "c" if woken_first == "b" else "b"
    shared._changed.holds[other] = lambda: model.until_called(2)  # until woken_first has taken b
    open_gate(model, threads)
    assert model.calls[1:] == [[["b"]], [["c"]]]
    assert model.callers[1:] == [woken_first, other]
    assert model.alone == [True, False, False], "b had c waiting behind it, and c had b running"
    assert results == {"first": ["FIRST"], "b": ["B"], "c": ["C"]}


def test_requests_that_wait_for_a_busy_model_share_the_next_call():
    model = GatedModel()
    shared = watched(model, slots=1, max_pieces=64)
    results = {}
    requests = [[[name], [name + "2"]] for name in ("b", "c", "d")]
    open_gate(model, queue_behind_a_held_call(shared, model, requests, results))
    assert model.calls[1:] == [[["b"], ["b2"], ["c"], ["c2"], ["d"], ["d2"]]], "one call, oldest first"
    assert results == {"first": ["FIRST"], "b": ["B", "B2"], "c": ["C", "C2"], "d": ["D", "D2"]}


def test_a_shared_call_stays_within_max_pieces():
    model = GatedModel()
    shared = watched(model, slots=1, max_pieces=3)
    results = {}
    requests = [[[name], [name]] for name in ("b", "c", "d")]
    open_gate(model, queue_behind_a_held_call(shared, model, requests, results))
    assert model.calls[1:] == [[["b"], ["b"]], [["c"], ["c"]], [["d"], ["d"]]]
    assert results["d"] == ["D", "D"]


@pytest.mark.parametrize("failing", ["boom", "fine"])
def test_a_failed_call_fails_every_request_in_it(failing):
    model = GatedModel()
    shared = watched(model, slots=1, max_pieces=64)
    results = {}
    open_gate(model, queue_behind_a_held_call(shared, model, [[["boom"]], [["fine"]]], results))
    assert model.calls[1:] == [[["boom"], ["fine"]]]
    assert isinstance(results[failing], RuntimeError)
    assert results["first"] == ["FIRST"]
    assert shared.translate([["after"]]) == ["AFTER"], "the next call goes ahead"

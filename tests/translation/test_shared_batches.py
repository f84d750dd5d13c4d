"""Concurrent requests sharing model calls (SharedBatches), with a stand-in for the model."""
import threading
import time

import pytest

from translation.engine import SharedBatches


class GatedModel:
    """Answers each piece with its own text; the first call waits until the test opens the gate."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls = []
        self.alone = []

    def run(self, pieces, alone):
        self.calls.append(pieces)
        self.alone.append(alone)
        if len(self.calls) == 1:
            assert self.gate.wait(5)
        if any(piece == ["boom"] for piece in pieces):
            raise RuntimeError("the model failed")
        return ["".join(piece).upper() for piece in pieces]


def start(shared, pieces, results):
    def call():
        try:
            results[pieces[0][0]] = shared.translate(pieces)
        except RuntimeError as exc:
            results[pieces[0][0]] = exc

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def wait_until(condition):
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def queue_behind_a_held_call(shared, model, requests, results):
    """"first" runs and is held at the model's gate; then `requests` start and wait behind it."""
    threads = [start(shared, [["first"]], results)]
    wait_until(lambda: model.calls)
    threads += [start(shared, pieces, results) for pieces in requests]
    wait_until(lambda: len(shared._waiting) == len(requests))
    return threads


def open_gate(model, threads):
    model.gate.set()
    for thread in threads:
        thread.join()


def test_a_lone_request_runs_at_once_in_its_own_call():
    model = GatedModel()
    model.gate.set()
    shared = SharedBatches(model.run, slots=2, max_pieces=64)
    assert shared.translate([["a"], ["b"]]) == ["A", "B"]
    assert model.calls == [[["a"], ["b"]]] and shared.calls == 1
    assert model.alone == [True], "with nothing else to do, it may use every core"


def test_a_lone_call_takes_every_slot_so_newcomers_wait_for_it():
    model = GatedModel()
    shared = SharedBatches(model.run, slots=2, max_pieces=64)
    results = {}
    threads = queue_behind_a_held_call(shared, model, [[["b"]], [["c"]]], results)
    time.sleep(0.05)
    assert len(model.calls) == 1, "a second slot is not free while a lone call runs"
    open_gate(model, threads)
    assert model.calls[1:] == [[["b"], ["c"]]] and model.alone == [True, True]
    assert results == {"first": ["FIRST"], "b": ["B"], "c": ["C"]}


def test_calls_made_while_others_wait_run_on_a_slot_each():
    class BothAtOnce(GatedModel):
        """b's call lasts until c's has started: the two overlap, as under load."""

        def run(self, pieces, alone):
            result = super().run(pieces, alone)
            if pieces == [["b"]]:
                wait_until(lambda: len(self.calls) == 3)
            return result

    model = BothAtOnce()
    shared = SharedBatches(model.run, slots=2, max_pieces=1)
    results = {}
    open_gate(model, queue_behind_a_held_call(shared, model, [[["b"]], [["c"]]], results))
    assert sorted(model.calls[1:]) == [[["b"]], [["c"]]]
    assert model.alone == [True, False, False], "b had c waiting behind it, and c had b running"


def test_requests_that_wait_for_a_busy_model_share_the_next_call():
    model = GatedModel()
    shared = SharedBatches(model.run, slots=1, max_pieces=64)
    results = {}
    requests = [[[name], [name + "2"]] for name in ("b", "c", "d")]
    open_gate(model, queue_behind_a_held_call(shared, model, requests, results))
    assert len(model.calls) == 2 and sorted(model.calls[1]) == [["b"], ["b2"], ["c"], ["c2"], ["d"], ["d2"]]
    assert results == {"first": ["FIRST"], "b": ["B", "B2"], "c": ["C", "C2"], "d": ["D", "D2"]}


def test_a_shared_call_stays_within_max_pieces():
    model = GatedModel()
    shared = SharedBatches(model.run, slots=1, max_pieces=3)
    results = {}
    threads = [start(shared, [["first"]], results)]
    wait_until(lambda: model.calls)
    for name in ("b", "c", "d"):
        threads.append(start(shared, [[name], [name]], results))
        wait_until(lambda: not threads[-1].is_alive() or len(shared._waiting) == len(threads) - 1)
    open_gate(model, threads)
    assert [len(call) for call in model.calls] == [1, 2, 2, 2]
    assert results["d"] == ["D", "D"]


@pytest.mark.parametrize("failing", ["boom", "fine"])
def test_a_failed_call_fails_every_request_in_it(failing):
    model = GatedModel()
    shared = SharedBatches(model.run, slots=1, max_pieces=64)
    results = {}
    open_gate(model, queue_behind_a_held_call(shared, model, [[["boom"]], [["fine"]]], results))
    assert isinstance(results[failing], RuntimeError)
    assert results["first"] == ["FIRST"]
    assert shared.translate([["after"]]) == ["AFTER"], "the next call goes ahead"

"""Retries never spin and never sleep forever."""
from worker_client.client import Backoff


def test_delays_grow_and_stop_at_the_cap():
    backoff = Backoff(base=1, cap=60, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_jitter_keeps_at_least_half_the_delay():
    low = Backoff(base=1, cap=60, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(4)] == [0.5, 1, 2, 4]


def test_retry_after_is_honoured():
    assert Backoff(rng=lambda: 0.0).next_delay(retry_after="30") == 30


def test_reset_starts_over():
    backoff = Backoff(base=1, cap=60, rng=lambda: 1.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1

"""The hand-written SQL's runner: a transaction PostgreSQL rolls back as a deadlock's victim runs again."""
import threading
from contextlib import nullcontext

import pytest
from django.db import OperationalError, connection, transaction

from accounts.credits import credits_grant
from accounts.models import ApiKey, CreditBalance
from jptranscribe.sql import retried_on_conflict

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def crossing(first, second, barrier, done, *, outer=False):
    """Lock `first`'s balance row, wait for the other thread to lock its own, then want `second`'s:
    the two threads deadlock, and PostgreSQL rolls one of them back."""
    calls = []

    def transfer():
        calls.append(1)
        with transaction.atomic():
            CreditBalance.objects.select_for_update().get(key_id=first)
            if len(calls) == 1:
                barrier.wait(timeout=10)
            CreditBalance.objects.select_for_update().get(key_id=second)
        return len(calls)

    def run():
        try:
            with transaction.atomic() if outer else nullcontext():
                done.append(retried_on_conflict(transfer))
        except OperationalError as exc:
            done.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=run)


def two_keys():
    if connection.vendor != "postgresql":
        pytest.skip("deadlocks are PostgreSQL's: SQLite has one writer at a time")
    keys = [ApiKey.mint()[0] for _ in range(2)]
    for key in keys:
        credits_grant(key=key, amount=1, reason="test")
    return [key.pk for key in keys]


def test_a_deadlocks_victim_runs_again_and_both_transactions_complete():
    a, b = two_keys()
    barrier, done = threading.Barrier(2), []
    threads = [crossing(a, b, barrier, done), crossing(b, a, barrier, done)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(done) == [1, 2], "one went through at once, the deadlock's victim at its second try"


def test_inside_a_callers_transaction_it_runs_once_and_the_error_reaches_the_caller():
    a, b = two_keys()
    barrier, done = threading.Barrier(2), []
    threads = [crossing(a, b, barrier, done, outer=True), crossing(b, a, barrier, done, outer=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(map(type, done), key=str) == sorted([int, OperationalError], key=str)

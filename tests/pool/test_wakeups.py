"""Wake-ups: a queued job wakes one waiting claim, this process's own when it has one, and no job
is left with nobody woken for it."""
from contextlib import ExitStack

import pytest
from django.db import connection, transaction

from pool import wakeup

CREDIT = "queued:credit"


@pytest.fixture
def hub(monkeypatch):
    """A hub of the test's own, without the safety net's periodic wake-ups: each wake-up here has
    the cause the test gives it."""
    fresh = wakeup._Hub(safety_net=False)
    monkeypatch.setattr(wakeup, "hub", fresh)
    return fresh


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs, woken", [(1, [True, False]), (2, [True, True])])
def test_each_job_queued_wakes_one_waiter_once_its_transaction_commits(hub, jobs, woken):
    with hub.listening([CREDIT]) as first, hub.listening([CREDIT]) as second:
        with transaction.atomic():
            for _ in range(jobs):
                wakeup.announce(CREDIT)
            assert not first.is_set(), "woken before the job is there to claim"
        assert [first.is_set(), second.is_set()] == woken


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_rolled_back_wakes_nobody_and_its_waiter_takes_the_next(hub):
    with hub.listening([CREDIT]) as waiter:
        with pytest.raises(RuntimeError), transaction.atomic():
            wakeup.announce(CREDIT)
            raise RuntimeError("the insert failed")
        assert not waiter.is_set()
        with transaction.atomic():
            wakeup.announce(CREDIT)
        assert waiter.wait(3), "a rolled-back promise kept the waiter from the next job"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_waiter_left_before_the_commit_wakes_another(hub):
    with ExitStack() as leaving, hub.listening([CREDIT]) as left_behind:
        gone = leaving.enter_context(hub.listening([CREDIT]))  # the longest waiting: promised the job
        with transaction.atomic():
            wakeup.announce(CREDIT)
            leaving.close()  # its wait ran out before the job was committed
        assert not gone.is_set()
        assert left_behind.wait(3), "the job was announced to a waiter that had gone"


def test_a_waiter_woken_while_it_was_looking_passes_the_wake_up_on(hub):
    looking_claim = hub.listening([CREDIT])  # registered first: the longest waiting
    looking = looking_claim.__enter__()
    with hub.listening([CREDIT]) as other:
        hub.publish(CREDIT)  # while the claim looks in the database: its look may miss the job
        assert looking.is_set() and not other.is_set()
        looking_claim.__exit__(None, None, None)  # it answers with what its look found, without waiting
        assert other.is_set(), "the job was left with nobody woken for it"


def test_a_waiter_that_heeded_its_wake_up_keeps_it(hub):
    woken_claim = hub.listening([CREDIT])
    woken = woken_claim.__enter__()
    with hub.listening([CREDIT]) as other:
        hub.publish(CREDIT)
        assert woken.wait(0)  # it waited and was woken: it looks again under a new registration
        woken_claim.__exit__(None, None, None)
        assert not other.is_set(), "one job woke two claims"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_only_a_job_no_waiter_here_takes_is_announced_to_other_app_servers(hub):
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    import psycopg

    with psycopg.connect(**wakeup.conninfo(), autocommit=True) as other_server:
        other_server.execute(f"LISTEN {wakeup.PG_CHANNEL}")
        with hub.listening([CREDIT]) as here:
            with transaction.atomic():
                wakeup.announce(CREDIT)
            assert here.is_set()
            assert [n.payload for n in other_server.notifies(timeout=0.5)] == []
        with transaction.atomic():
            wakeup.announce(CREDIT)  # nobody waits here now
        assert [n.payload for n in other_server.notifies(timeout=2, stop_after=1)] == [CREDIT]

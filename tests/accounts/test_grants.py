"""An operator's grant or deduction: the one rule behind `manage.py credits grant` and the admin."""
from decimal import Decimal

import pytest

from accounts import credits
from accounts.models import ApiKey, CreditEntry

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def key():
    return ApiKey.mint()[0]


def grant(key, amount):
    return credits.credits_grant(key=key, amount=amount, reason="test", actor="test")


def test_a_grant_and_a_deduction_each_write_a_ledger_row_and_move_the_balance(key):
    grant(key, 10)
    grant(key, Decimal("-2.5"))
    assert credits.credits_balance(key) == Decimal("7.5")
    assert sorted(CreditEntry.objects.values_list("seconds", flat=True)) == [Decimal("-2.5"), Decimal("10")]


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_an_amount_that_is_not_a_finite_number_is_refused(key, amount):
    with pytest.raises(ValueError, match="finite number"):
        grant(key, amount)
    assert not CreditEntry.objects.exists()


@pytest.mark.parametrize("amount", [1e30, -1e30, 315_360_000.001, Decimal("1E+400")])
def test_more_than_ten_years_of_audio_in_one_grant_is_refused(key, amount):
    with pytest.raises(ValueError, match="315,360,000 s, ten years"):
        grant(key, amount)
    assert not CreditEntry.objects.exists()


def test_ten_years_is_the_most_one_grant_moves(key):
    grant(key, 315_360_000)
    assert credits.credits_balance(key) == credits.MAX_GRANT_SECONDS


@pytest.mark.parametrize("amount", [0, -0.0, Decimal("0.0004")])
def test_a_grant_of_nothing_writes_no_row(key, amount):
    with pytest.raises(ValueError, match="0 s changes nothing"):
        grant(key, amount)
    assert not CreditEntry.objects.exists()


def test_a_deduction_may_take_the_spendable_balance_and_no_more(key):
    grant(key, 10)
    with pytest.raises(ValueError, match="10 s spendable: at most 10 s can be deducted, not 100 s"):
        grant(key, -100)
    assert credits.credits_balance(key) == Decimal("10")
    grant(key, -10)
    assert credits.credits_balance(key) == Decimal("0")


def test_seconds_held_for_a_job_are_not_spendable_so_cannot_be_deducted(key):
    grant(key, 10)
    credits.credits_reserve(key=key, amount=7, job_ref="tx_1")
    with pytest.raises(ValueError, match="3 s spendable"):
        grant(key, -4)
    grant(key, -3)
    assert credits.credits_balance(key) == Decimal("0")


def test_a_key_with_no_credits_has_nothing_to_deduct(key):
    with pytest.raises(ValueError, match="0 s spendable"):
        grant(key, -1)
    assert credits.credits_balance(key) == Decimal("0")

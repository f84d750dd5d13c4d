"""Credits are seconds to the millisecond, kept as whole milliseconds: no database needed."""
from decimal import Decimal

from accounts.credits import credits_missing, milliseconds, seconds, seconds_of


def test_seconds_round_half_up_to_the_millisecond():
    assert seconds(1.0005) == Decimal("1.001")
    assert seconds("2.0004") == Decimal("2.000")
    assert seconds(0.1) + seconds(0.2) == Decimal("0.300"), "no binary floating-point drift"


def test_milliseconds_and_seconds_convert_both_ways_exactly():
    for value in ("0", "0.001", "1000.633", "-2.5"):
        assert seconds_of(milliseconds(value)) == Decimal(value)


def test_a_clip_needs_what_the_balance_lacks():
    assert credits_missing(needed=12.5, balance=Decimal("10")) == Decimal("2.500")


def test_a_negative_balance_counts_as_none():
    assert credits_missing(needed=3, balance=Decimal("-4")) == Decimal("3.000")

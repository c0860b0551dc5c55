"""Exact credit arithmetic: integer units of 1/10,000 credit, never float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.credits.amounts import MAX_UNITS, AmountError, cost_to_units, format_credits, to_credits, to_units


@pytest.mark.parametrize(
    ("value", "units"),
    [
        (Decimal("1.5"), 15_000),
        ("0.0001", 1),
        ("-2.25", -22_500),
        (3, 30_000),
        ("1e3", 10_000_000),
        (Decimal("1.00000"), 10_000),  # trailing zeros are not extra places
        (" 2.5 ", 25_000),
        ("-0", 0),
        ("922337203685477.5807", MAX_UNITS),
    ],
)
def test_to_units_is_exact(value, units):
    assert to_units(value) == units


@pytest.mark.parametrize("value", [1.5, 0.1, 10.0, float("nan"), float("inf")])
def test_to_units_refuses_float(value):
    with pytest.raises(AmountError, match="never float"):
        to_units(value)


def test_to_units_refuses_bool():
    with pytest.raises(AmountError):
        to_units(True)


@pytest.mark.parametrize(
    "value",
    [
        "0.00001",
        "1.23456",
        Decimal("0.00005"),
        "1e-5",
        "1e-999999",
        # 31 significant digits: the default 28-digit context would round this to 10,000 units.
        "1.00000000000000000000000000001",
    ],
)
def test_to_units_refuses_more_than_four_places(value):
    with pytest.raises(AmountError, match="more than 4 decimal places"):
        to_units(value)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "-NaN", "Infinity", "-inf", Decimal("NaN")])
def test_to_units_refuses_nan_and_infinity(value):
    with pytest.raises(AmountError, match="finite"):
        to_units(value)


@pytest.mark.parametrize("value", ["abc", "", "1,5", None, [1]])
def test_to_units_refuses_non_numbers(value):
    with pytest.raises(AmountError, match="Not a number"):
        to_units(value)


@pytest.mark.parametrize("value", ["922337203685477.5808", "1e400", "9e999999999", 10**30])
def test_to_units_refuses_amounts_beyond_a_64_bit_column(value):
    with pytest.raises(AmountError, match="too large"):
        to_units(value)


def test_cost_rounds_up_to_the_next_unit():
    assert cost_to_units(Decimal("0.00001")) == 1
    assert cost_to_units(Decimal(1) / 3) == 3_334
    assert cost_to_units(Decimal("1.00000")) == 10_000
    assert cost_to_units(Decimal("1e-9999999999")) == 1
    assert cost_to_units(Decimal(0)) == 0
    assert cost_to_units(Decimal("2.5")) == 25_000


@pytest.mark.parametrize("value", [Decimal("-1"), Decimal("-0.00001")])
def test_cost_refuses_negative_costs_that_would_mint_credits(value):
    with pytest.raises(AmountError, match="negative"):
        cost_to_units(value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), 0.5])
def test_cost_refuses_nan_infinity_and_float(value):
    with pytest.raises(AmountError):
        cost_to_units(value)


def test_to_credits_and_format():
    assert to_credits(15_000) == Decimal("1.5000")
    assert to_credits(1) == Decimal("0.0001")
    assert format_credits(12_345_000) == "1,234.5"
    assert format_credits(0) == "0"
    assert format_credits(100_000) == "10"
    assert format_credits(-25_000) == "-2.5"


@pytest.mark.parametrize("value", ["0", "0.0001", "123.4567", "-5.5", "922337203685477.5807"])
def test_round_trip(value):
    assert to_credits(to_units(value)) == Decimal(value)

"""Exact credit arithmetic.

Credits are stored as integers of 1/10,000 credit ("units", `SCALE`); no float ever touches an
amount. Public services take and return `Decimal` credits with at most four decimal places;
costs computed from rates are rounded *up* to the next unit, so a charge is never understated.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from apps.core.errors import DomainError

SCALE_DIGITS = 4
SCALE = 10**SCALE_DIGITS
PLACES = Decimal("0.0001")
# Amounts are stored in signed 64-bit columns.
MAX_UNITS = 2**63 - 1
MAX_CREDITS = Decimal(MAX_UNITS).scaleb(-SCALE_DIGITS)
# What `to_units` accepts, for messages refusing anything else ("--amount 'ten' is not ...").
AMOUNT_HINT = "an amount of credits (at most 4 decimal places)"


class AmountError(DomainError, ValueError):
    """An amount that is not an exact, finite number of credits with ≤ 4 decimal places (still a
    ValueError: callers that parse numbers catch it as one)."""

    status_code = 400
    code = "invalid_amount"


def to_units(credits: Decimal | int | str) -> int:
    """Exact conversion; refuses floats and anything finer than 1/10,000 credit."""
    if isinstance(credits, (bool, float)):
        raise AmountError("Credit amounts must be Decimal, int or str, never float.")
    try:
        value = Decimal(credits)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise AmountError(f"Not a number: {credits!r}") from exc
    units = _scaled(value, round_up=False)
    if units is None:
        raise AmountError(f"{credits} has more than 4 decimal places.")
    return units


def cost_to_units(credits: Decimal) -> int:
    """A computed cost (rate times quantity) rounded up to the next unit. A cost is never
    negative: a negative one would mint credits when charged."""
    if isinstance(credits, (bool, float)):
        raise AmountError("Costs must be Decimal or int, never float.")
    value = Decimal(credits)
    if value.is_finite() and value < 0:
        raise AmountError(f"A cost cannot be negative: {credits}")
    units = _scaled(value, round_up=True)
    assert units is not None
    return units


def _scaled(value: Decimal, *, round_up: bool) -> int | None:
    """`value` in units, computed from its digits: Decimal arithmetic in the default context
    keeps 28 digits and would round "1.00000000000000000000000000001" to a whole number of
    units. None when it is not a whole number of units (and not rounding up)."""
    if not value.is_finite():
        raise AmountError("Credit amounts must be finite.")
    if value.copy_abs() > MAX_CREDITS:  # exact; checked first, so the powers of ten below stay small
        raise AmountError("Credit amount is too large.")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)))
    shift = exponent + SCALE_DIGITS
    if coefficient == 0:
        return 0
    if shift >= 0:
        units = coefficient * 10**shift
    elif -shift > len(digits):  # a non-zero amount below one unit
        units, rest = 0, 1
    else:
        units, rest = divmod(coefficient, 10**-shift)
    if shift < 0 and rest:
        if not round_up:
            return None
        units += 1
    units = -units if sign else units
    if abs(units) > MAX_UNITS:
        raise AmountError("Credit amount is too large.")
    return units


def to_credits(units: int) -> Decimal:
    return (Decimal(units) / SCALE).quantize(PLACES)


def format_credits(units: int) -> str:
    """Human form: thousands separators, trailing zeros trimmed ("1,234.5")."""
    value = to_credits(units)
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text or "0"

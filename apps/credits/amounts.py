"""Exact credit arithmetic.

Credits are stored as integers of 1/10,000 credit ("units", `SCALE`); no float ever touches an
amount. Public services take and return `Decimal` credits with at most four decimal places;
costs computed from rates are rounded *up* to the next unit, so a charge is never understated.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

SCALE = 10_000
PLACES = Decimal("0.0001")


class AmountError(ValueError):
    """An amount that is not an exact, finite number of credits with ≤ 4 decimal places."""


def to_units(credits: Decimal | int | str) -> int:
    """Exact conversion; refuses floats and anything finer than 1/10,000 credit."""
    if isinstance(credits, (bool, float)):
        raise AmountError("Credit amounts must be Decimal, int or str, never float.")
    try:
        value = Decimal(credits)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise AmountError(f"Not a number: {credits!r}") from exc
    if not value.is_finite():
        raise AmountError("Credit amounts must be finite.")
    units = value * SCALE
    if units != units.to_integral_value():
        raise AmountError(f"{credits} has more than 4 decimal places.")
    return int(units)


def cost_to_units(credits: Decimal) -> int:
    """A computed cost (rate times quantity) rounded up to the next unit."""
    return int((credits * SCALE).to_integral_value(rounding=ROUND_CEILING))


def to_credits(units: int) -> Decimal:
    return (Decimal(units) / SCALE).quantize(PLACES)


def format_credits(units: int) -> str:
    """Human form: thousands separators, trailing zeros trimmed ("1,234.5")."""
    value = to_credits(units)
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text or "0"

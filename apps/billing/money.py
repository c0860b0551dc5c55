"""Prices in integer minor units, shown the way Stripe charges them."""

from __future__ import annotations

from decimal import Decimal

# Stripe's zero-decimal currencies: the amount is in whole units.
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "aud": "A$", "cad": "C$"}


def minor_digits(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def money_display(cents: int, currency: str) -> str:
    currency = (currency or "").lower()
    digits = minor_digits(currency)
    value = Decimal(cents).scaleb(-digits)
    number = f"{value:,.{digits}f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"

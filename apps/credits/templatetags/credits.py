from __future__ import annotations

from django import template

from apps.credits.amounts import format_credits

register = template.Library()


@register.filter(name="credits")
def credits_filter(units: int | None) -> str:
    """Units (1/10,000 credit) as a human amount: 1234500 → "123.45"."""
    if units is None:
        return ""
    return format_credits(int(units))

from __future__ import annotations

from apps.core.errors import DomainError
from apps.credits.amounts import format_credits


class CreditsError(DomainError):
    """A credits rule refused the operation; the message is safe to show."""

    status_code = 400
    code = "credits_refused"


class InsufficientCredits(CreditsError):
    status_code = 402
    code = "insufficient_credits"

    def __init__(self, *, available_units: int, requested_units: int) -> None:
        self.available_units = available_units
        self.requested_units = requested_units
        super().__init__(
            f"Not enough credits: {format_credits(requested_units)} needed, "
            f"{format_credits(max(available_units, 0))} available."
        )


class SpendingCapReached(CreditsError):
    """A workspace's or member's spending cap: a quota, like running out of credits (402)."""

    status_code = 402

    def __init__(self, *, cap: str, limit_units: int, spent_units: int, requested_units: int) -> None:
        self.cap = cap
        self.limit_units = limit_units
        self.spent_units = spent_units
        self.requested_units = requested_units
        super().__init__(
            f"The {cap} spending cap of {format_credits(limit_units)} credits would be exceeded "
            f"({format_credits(spent_units)} spent, {format_credits(requested_units)} requested)."
        )


class RateNotFound(CreditsError):
    status_code = 400


class InvalidRate(CreditsError):
    status_code = 400

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


class CapExceeded:
    """What a spending-cap refusal carries (a workspace's, a member's or an API key's): which
    cap ("daily" or "monthly"), its limit, what was spent and what was asked, in units."""

    cap: str
    limit_units: int
    spent_units: int
    requested_units: int

    def cap_message(self, whose: str, *, cap: str, limit_units: int, spent_units: int, requested_units: int) -> str:
        self.cap, self.limit_units = cap, limit_units
        self.spent_units, self.requested_units = spent_units, requested_units
        return (
            f"{whose} {cap} spending cap of {format_credits(limit_units)} credits would be exceeded "
            f"({format_credits(spent_units)} spent, {format_credits(requested_units)} requested)."
        )


class SpendingCapReached(CapExceeded, CreditsError):
    """A workspace's or member's spending cap: a quota, like running out of credits (402)."""

    status_code = 402

    def __init__(self, *, cap: str, limit_units: int, spent_units: int, requested_units: int) -> None:
        amounts = {"limit_units": limit_units, "spent_units": spent_units, "requested_units": requested_units}
        super().__init__(self.cap_message("The", cap=cap, **amounts))


class RateNotFound(CreditsError):
    status_code = 400


class InvalidRate(CreditsError):
    status_code = 400

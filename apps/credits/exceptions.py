from __future__ import annotations

from apps.credits.amounts import format_credits


class CreditsError(Exception):
    """A credits rule refused the operation; the message is safe to show."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InsufficientCredits(CreditsError):
    status_code = 402

    def __init__(self, *, available_units: int, requested_units: int) -> None:
        self.available_units = available_units
        self.requested_units = requested_units
        super().__init__(
            f"Not enough credits: {format_credits(requested_units)} needed, "
            f"{format_credits(max(available_units, 0))} available."
        )


class SpendingCapReached(CreditsError):
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

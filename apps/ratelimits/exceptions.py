from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.errors import DomainError

if TYPE_CHECKING:
    from apps.ratelimits.decisions import RateLimitDecision


class RateLimited(DomainError):
    """A request refused by a rate limit: 429 with the decision's headers (they include
    `Retry-After` and the `x-ratelimit-*` state of the tightest windows)."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, decision: RateLimitDecision) -> None:
        self.decision = decision
        self.retry_after = decision.retry_after
        super().__init__(decision.message, headers=decision.headers())

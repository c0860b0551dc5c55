from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.ratelimits.decisions import RateLimitDecision


class RateLimited(Exception):
    """A request refused by a rate limit; render as 429 with `headers` (they include
    `Retry-After`)."""

    def __init__(self, decision: RateLimitDecision) -> None:
        self.decision = decision
        self.message = decision.message
        self.retry_after = decision.retry_after
        self.headers = decision.headers()
        super().__init__(self.message)

"""What a rate limit check answers, and how it is told to HTTP clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apps.ratelimits.selectors import Subject
from apps.ratelimits.windows import format_duration

Kind = Literal["requests", "tokens"]

_PER_MINUTE = {"requests": "requests per minute", "tokens": "tokens per minute"}
_SUBJECT_LABEL = {"key": "this API key", "user": "you in this workspace", "workspace": "this workspace"}


@dataclass(frozen=True)
class WindowState:
    """One (subject, kind) window after the check: what is left of its limit."""

    subject: Subject
    kind: Kind
    limit: int
    remaining: int
    reset_seconds: int  # until the window is back to its full limit


@dataclass(frozen=True)
class RateLimitDecision:
    allowed: bool
    retry_after: int = 0  # seconds, >= 1 when refused
    exceeded: WindowState | None = None  # the window that refused the request
    windows: tuple[WindowState, ...] = ()  # every limited window (unlimited ones are absent)
    request_too_large: bool = False  # the token estimate alone is above a tokens-per-minute limit
    degraded: bool = False  # the storage was unreachable: allowed without counting

    @property
    def message(self) -> str:
        if self.allowed or self.exceeded is None:
            return ""
        window = self.exceeded
        limit = f"{window.limit} {_PER_MINUTE[window.kind]} for {_SUBJECT_LABEL[window.subject]}"
        if self.request_too_large:
            return f"This request needs more tokens than the limit allows ({limit})."
        return f"Rate limit reached: {limit}. Try again in {self.retry_after}s."

    def tightest(self, kind: Kind) -> WindowState | None:
        """The window of this kind closest to refusing: the one that refused, else the one with
        the fewest remaining (then the lowest limit)."""
        if self.exceeded is not None and self.exceeded.kind == kind:
            return self.exceeded
        candidates = [w for w in self.windows if w.kind == kind]
        return min(candidates, key=lambda w: (w.remaining, w.limit), default=None)

    def headers(self) -> dict[str, str]:
        """OpenAI-style `x-ratelimit-*` headers for the tightest window of each kind (a kind with
        no limited window has none), plus `Retry-After` when refused."""
        headers: dict[str, str] = {}
        kinds: tuple[Kind, ...] = ("requests", "tokens")
        for kind in kinds:
            window = self.tightest(kind)
            if window is None:
                continue
            headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(window.reset_seconds)
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

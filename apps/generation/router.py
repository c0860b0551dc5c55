"""Failover across a model's fallback chain, guarded by circuit breakers.

`failover_stream` walks the chain in order and streams from the first target that works:

- a target whose breaker refuses (open, or half-open with its probe taken) is skipped;
- a retryable error before the first token counts on the breaker and moves on to the next target;
- a non-retryable error before the first token (bad key, unknown model, bad request) does not
  count on the breaker — it says nothing about the upstream's health — but also moves on: one
  misconfigured provider must not take the whole chain down with it (if the request itself is
  bad, every target refuses it and the caller gets `AllProvidersFailed` with each reason);
- after the first token has been yielded there is no failover: the user has seen part of an
  answer, and a second model would restart it. The error is recorded on the breaker (when
  retryable) and re-raised; the caller ends the stream and charges what was delivered.

When every target failed or was skipped, `AllProvidersFailed` is raised: nothing was delivered.
Every target considered is reported once, when its attempt ends, through `on_attempt`.

Callers that may stop early (stop button, client gone) should close the stream
(`contextlib.aclosing`) so the upstream connection is released at once; the attempt is then
reported as cancelled (a cancelled task too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Literal

from apps.generation.breaker import CircuitBreaker
from apps.generation.providers.base import (
    ChatRequest,
    Delivered,
    ModelTarget,
    ProviderError,
    StreamEnd,
    StreamEvent,
)
from apps.generation.providers.registry import chat_stream

Outcome = Literal["ok", "error", "skipped", "cancelled"]


@dataclass(frozen=True)
class Attempt:
    """One target of the chain: tried (ok, error, cancelled) or skipped by its breaker.

    Times are wall-clock seconds (`time.time()`); `first_token_at` is None when no text came."""

    target: ModelTarget
    outcome: Outcome
    error: ProviderError | None
    started_at: float
    first_token_at: float | None
    ended_at: float

    @property
    def delivered(self) -> bool:
        return self.first_token_at is not None

    @property
    def time_to_first_token_ms(self) -> int | None:
        return None if self.first_token_at is None else round((self.first_token_at - self.started_at) * 1000)

    @property
    def duration_ms(self) -> int:
        return round((self.ended_at - self.started_at) * 1000)


class AllProvidersFailed(ProviderError):
    """No target of the chain delivered anything: each failed before its first token or was
    skipped by an open breaker. Retryable when any of them may work later: a skipped target or a
    retryable error (not when every target had a configuration error, or the chain is empty)."""

    def __init__(self, attempts: list[Attempt]) -> None:
        self.attempts = attempts
        reasons = "; ".join(
            f"{a.target.label or a.target.upstream_model}: {a.error.message if a.error else a.outcome}"
            for a in attempts
        )
        last_status = next((a.error.status_code for a in reversed(attempts) if a.error), None)
        retryable = any(a.error is None or a.error.retryable for a in attempts)
        super().__init__(
            f"all providers failed ({reasons or 'empty chain'})", status_code=last_status, retryable=retryable
        )


AttemptCallback = Callable[[Attempt], None]


def _report(on_attempt: AttemptCallback | None, attempts: list[Attempt], attempt: Attempt) -> None:
    attempts.append(attempt)
    if on_attempt is not None:
        on_attempt(attempt)


def _skipped(target: ModelTarget) -> Attempt:
    now = time.time()
    return Attempt(target, "skipped", None, now, None, now)


def _interrupted(target: ModelTarget, exc: BaseException, started_at: float, first_token_at: float | None) -> Attempt:
    if isinstance(exc, GeneratorExit | asyncio.CancelledError | KeyboardInterrupt):
        return Attempt(target, "cancelled", None, started_at, first_token_at, time.time())
    error = ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)
    return Attempt(target, "error", error, started_at, first_token_at, time.time())


async def failover_stream(
    chain: list[ModelTarget],
    request: ChatRequest,
    *,
    breaker: CircuitBreaker,
    on_attempt: AttemptCallback | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Stream `request` from the first target of `chain` that works (see the module docstring);
    `on_attempt` (synchronous) is told of each target considered, when its attempt ends."""
    attempts: list[Attempt] = []
    for target in chain:
        key = target.breaker_key
        if not await breaker.aallow(key):
            _report(on_attempt, attempts, _skipped(target))
            continue
        started_at = time.time()
        first_token_at: float | None = None
        finished = False
        events = chat_stream(target, request)
        try:
            async for event in events:
                if first_token_at is None and isinstance(event, Delivered):
                    first_token_at = time.time()
                elif isinstance(event, StreamEnd):
                    # Recorded before the caller sees the end, so a caller that stops reading
                    # at StreamEnd still leaves a complete record.
                    finished = True
                    await breaker.arecord_success(key)
                    _report(on_attempt, attempts, Attempt(target, "ok", None, started_at, first_token_at, time.time()))
                yield event
        except ProviderError as error:
            if error.retryable:
                await breaker.arecord_failure(key)
            else:
                await breaker.arelease(key)
            _report(on_attempt, attempts, Attempt(target, "error", error, started_at, first_token_at, time.time()))
            if first_token_at is not None:
                raise
            continue
        except BaseException as exc:
            # Closed by the caller (GeneratorExit), cancelled, or a bug below us. Text that
            # arrived proves the upstream works; otherwise the attempt says nothing about it.
            if not finished:
                if first_token_at is not None:
                    await breaker.arecord_success(key)
                else:
                    await breaker.arelease(key)
                _report(on_attempt, attempts, _interrupted(target, exc, started_at, first_token_at))
            raise
        finally:
            await events.aclose()
        if not finished:  # a provider that ended without StreamEnd: treat it as done
            await breaker.arecord_success(key)
            _report(on_attempt, attempts, Attempt(target, "ok", None, started_at, first_token_at, time.time()))
        return
    raise AllProvidersFailed(attempts)

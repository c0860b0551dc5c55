"""The charging pipeline: every chat generation is authorised, quoted, reserved, streamed through
the model's fallback chain, then settled (or released) exactly once and logged.

    authorise → quote → credits_reserve → stream (no transaction open) → settle | release → log

How each ending is charged (the hold is always ended by the `finally` of one generator):

- the stream finished: settle the provider-reported usage, or count the delivered text when the
  provider reported none;
- a provider error after the first token, the stop button, the client gone: settle the input
  tokens plus the output tokens delivered (never zero for a delivered answer);
- nothing delivered (every provider failed before its first token, or the caller left before
  it): release — nothing is charged;
- the worker died: the reservation stays held with its last checkpoint (written every
  `CHECKPOINT_EVERY` tokens) and `credits_sweep` settles that.

Charges use the rate card the reservation was quoted with, even when a fallback model answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

from apps.accounts.models import User
from apps.credits.exceptions import CreditsError
from apps.credits.models import Reservation
from apps.credits.rates import credits_quote
from apps.credits.services import credits_checkpoint, credits_release, credits_reserve, credits_settle
from apps.generation.breaker import CircuitBreaker
from apps.generation.models import AIModel, Generation
from apps.generation.providers.base import (
    ChatRequest,
    ModelTarget,
    ProviderError,
    StreamEnd,
    TextDelta,
    Usage,
)
from apps.generation.router import AllProvidersFailed, Attempt, stream_with_failover
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

SERVICE = "text"
CHECKPOINT_EVERY = 20  # text deltas between two checkpoints of the delivered cost


class GenerationRefused(Exception):
    """The generation was refused before any call (model disabled, not in the plan...)."""

    status_code = 403

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class GenerationEnd:
    """The last event of a generation stream that was not closed by its caller."""

    generation_id: int
    outcome: str
    usage: Usage
    credits_units: int
    error: str = ""


GenerationEvent = TextDelta | GenerationEnd


def _usable(model: AIModel, plan_code: str | None) -> bool:
    provider = model.provider
    return (
        model.enabled
        and model.supports_chat
        and provider.enabled
        and provider.is_configured
        and model.allowed_for_plan(plan_code)
    )


def _authorise(model: AIModel, plan_code: str | None) -> None:
    if not model.enabled or not model.supports_chat:
        raise GenerationRefused(f"The model {model.model_id} is not available.")
    if not model.provider.enabled or not model.provider.is_configured:
        raise GenerationRefused(f"The provider of {model.model_id} is not available.")
    if not model.allowed_for_plan(plan_code):
        raise GenerationRefused(f"Your plan does not include {model.model_id}.")


def generation_chain(*, model: AIModel, plan_code: str | None = None) -> list[ModelTarget]:
    """The model's target, then its usable fallbacks in position order."""
    chain = [model.target()]
    links = model.fallback_links.select_related("fallback__provider").order_by("position", "id")
    chain += [link.fallback.target() for link in links if _usable(link.fallback, plan_code)]
    return chain


def _attempt_row(attempt: Attempt) -> dict[str, Any]:
    return {
        "model": attempt.target.label,
        "provider": attempt.target.provider.kind,
        "upstream_model": attempt.target.upstream_model,
        "outcome": attempt.outcome,
        "error": attempt.error.message if attempt.error else "",
        "status_code": attempt.error.status_code if attempt.error else None,
        "time_to_first_token_ms": attempt.time_to_first_token_ms,
        "duration_ms": attempt.duration_ms,
    }


def _provider_cost(target: ModelTarget, usage: Usage) -> Decimal | None:
    from apps.generation.providers.llm import provider_cost

    try:
        return provider_cost(target.upstream_model, usage, kind=target.provider.kind)
    except Exception:  # a log field: never worth failing a settlement for
        logger.warning("provider cost unavailable for %s", target.upstream_model, exc_info=True)
        return None


class GenerationStream(Iterator[GenerationEvent]):
    """One chat generation as an iterator of `TextDelta`s ending with a `GenerationEnd`.

    Nothing happens until the first `next()`; refusals (`GenerationRefused`, `CreditsError`
    such as `InsufficientCredits`) and `AllProvidersFailed` are raised from it, after the usage
    row is written and the hold released. Close it to stop early:
    `close(outcome=Generation.Outcome.CLIENT_GONE)` when the client went away, `close()` for
    the stop button; the delivered part is charged either way."""

    def __init__(
        self,
        *,
        workspace: Workspace,
        user: User | None,
        model: AIModel,
        messages: list[dict[str, Any]],
        max_tokens: int | None,
        temperature: float | None,
        idempotency_key: str,
        plan_code: str | None,
        breaker: CircuitBreaker | None,
    ) -> None:
        self.workspace = workspace
        self.user = user
        self.model = model
        self.messages = messages
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.idempotency_key = idempotency_key
        self.plan_code = plan_code
        self.breaker = breaker
        self.close_outcome: str = Generation.Outcome.STOPPED
        self.generation: Generation | None = None
        self.reservation: Reservation | None = None
        self._events = self._run()

    # ------------------------------------------------------------------------ iterator

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> GenerationEvent:
        return next(self._events)

    def close(self, outcome: str = Generation.Outcome.STOPPED) -> None:
        """Stop now and charge what was delivered; `outcome` is stopped or client_gone."""
        self.close_outcome = outcome
        self._events.close()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(self.close_outcome)

    # ------------------------------------------------------------------------ pipeline

    def _log(self, **fields: Any) -> Generation:
        self.generation = Generation.objects.create(
            workspace=self.workspace,
            user=self.user if self.user is not None and self.user.pk else None,
            model=self.model,
            model_label=self.model.model_id,
            **fields,
        )
        return self.generation

    def _refuse(self, exc: Exception, message: str) -> None:
        self._log(
            provider_kind=self.model.provider.kind,
            upstream_model=self.model.upstream_model,
            usage_reported=False,
            outcome=Generation.Outcome.REFUSED,
            error=message,
        )
        raise exc

    def _run(self) -> Generator[GenerationEvent, None, None]:
        started = time.monotonic()
        model = self.model
        try:
            _authorise(model, self.plan_code)
            max_output = min(self.max_tokens or model.max_output_tokens, model.max_output_tokens)
            input_tokens = count_message_tokens(model.upstream_model, self.messages)
            quote = credits_quote(
                service=SERVICE, model=model.model_id, input_tokens=input_tokens, output_tokens=max_output
            )
            reservation = credits_reserve(
                workspace=self.workspace,
                units=quote.units,
                idempotency_key=self.idempotency_key,
                user=self.user,
                service=SERVICE,
                model=model.model_id,
                rate_card=quote.rate_card,
            )
            if reservation.status != Reservation.Status.HELD:
                raise GenerationRefused("This request was already processed.")
            chain = generation_chain(model=model, plan_code=self.plan_code)
            breaker = self.breaker or CircuitBreaker.from_config()
        except (GenerationRefused, CreditsError) as exc:
            self._refuse(exc, exc.message)
            return  # unreachable: _refuse raises
        self.reservation = reservation
        request = ChatRequest(messages=self.messages, temperature=self.temperature, max_tokens=max_output)
        attempts: list[Attempt] = []
        delivered: list[str] = []
        first_token_ms: int | None = None
        end: StreamEnd | None = None
        error: BaseException | None = None
        outcome: str = Generation.Outcome.ERROR
        # No transaction is open here (credits_reserve committed): the provider call must never
        # hold a lock or a connection in a transaction.
        events = stream_with_failover(chain, request, breaker=breaker, on_attempt=attempts.append)
        try:
            try:
                for event in events:
                    if isinstance(event, TextDelta):
                        if first_token_ms is None:
                            first_token_ms = round((time.monotonic() - started) * 1000)
                        delivered.append(event.text)
                        yield event
                        if len(delivered) % CHECKPOINT_EVERY == 0:
                            self._checkpoint(reservation, input_tokens, len(delivered))
                    elif isinstance(event, StreamEnd):
                        end = event
            finally:
                events.close()
            outcome = Generation.Outcome.OK
        except ProviderError as exc:  # AllProvidersFailed, or an error after the first token
            error = exc
        except GeneratorExit:
            outcome = self.close_outcome
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            result = self._finish(
                reservation,
                attempts=attempts,
                delivered="".join(delivered),
                input_tokens=input_tokens,
                end=end,
                outcome=outcome,
                error=error,
                first_token_ms=first_token_ms,
                total_ms=round((time.monotonic() - started) * 1000),
            )
        if isinstance(error, AllProvidersFailed):
            raise error
        yield result

    def _checkpoint(self, reservation: Reservation, input_tokens: int, output_tokens: int) -> None:
        """Record the cost delivered so far (one text delta taken as one token), for the sweeper."""
        try:
            units = credits_quote(
                service=SERVICE,
                model=reservation.model,
                rate_card=reservation.rate_card,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            ).units
            credits_checkpoint(reservation=reservation, delivered_units=units)
        except Exception:  # a missed checkpoint only makes a crash cheaper for the user
            logger.warning("checkpoint failed for reservation %s", reservation.pk, exc_info=True)

    def _usage(self, target: ModelTarget | None, delivered: str, input_tokens: int, end: StreamEnd | None) -> Usage:
        if end is not None and end.usage is not None and end.usage.reported:
            usage = end.usage
            if delivered and usage.output_tokens == 0:  # never settle a delivered answer at zero
                output = max(count_tokens(target.upstream_model if target else "", delivered), 1)
                usage = Usage(usage.input_tokens, output, usage.cached_input_tokens, reported=False)
            return usage
        if target is not None and target.upstream_model != self.model.upstream_model:
            input_tokens = count_message_tokens(target.upstream_model, self.messages)
        upstream = target.upstream_model if target is not None else self.model.upstream_model
        output = count_tokens(upstream, delivered) if delivered else 0
        if delivered:
            output = max(output, 1)
        return Usage(input_tokens=input_tokens, output_tokens=output, reported=False)

    def _finish(
        self,
        reservation: Reservation,
        *,
        attempts: list[Attempt],
        delivered: str,
        input_tokens: int,
        end: StreamEnd | None,
        outcome: str,
        error: BaseException | None,
        first_token_ms: int | None,
        total_ms: int,
    ) -> GenerationEnd:
        """Settle or release the hold (once), and write the usage row."""
        used = next((a for a in reversed(attempts) if a.delivered or a.outcome == "ok"), None)
        target = used.target if used is not None else None
        answered = bool(delivered) or outcome == Generation.Outcome.OK
        usage = (
            self._usage(target, delivered, input_tokens, end)
            if answered
            else Usage(input_tokens=0, output_tokens=0, reported=False)
        )
        units = 0
        try:
            if answered:
                cached = min(usage.cached_input_tokens, usage.input_tokens)
                units = credits_quote(
                    service=SERVICE,
                    model=reservation.model,
                    rate_card=reservation.rate_card,
                    input_tokens=usage.input_tokens - cached,
                    output_tokens=usage.output_tokens,
                    cached_input_tokens=cached,
                ).units
                ended = credits_settle(
                    reservation=reservation,
                    actual_units=units,
                    usage={
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "cached_input_tokens": usage.cached_input_tokens,
                        "reported": usage.reported,
                        "outcome": outcome,
                    },
                    reason=f"generation {outcome}",
                )
            else:
                ended = credits_release(reservation=reservation, reason=f"generation {outcome}: nothing delivered")
            # The first ending stands (the sweeper may have got there first): log what it charged.
            units = ended.charged_units
        except Exception:
            # The hold stays with its checkpoint; the sweeper ends it.
            logger.exception("could not end reservation %s", reservation.pk)
        error_text = ""
        if error is not None:
            error_text = error.message if isinstance(error, ProviderError) else f"{type(error).__name__}: {error}"
        generation = self._log(
            provider_kind=target.provider.kind if target else self.model.provider.kind,
            upstream_model=target.upstream_model if target else self.model.upstream_model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            usage_reported=usage.reported,
            provider_cost=_provider_cost(target, usage) if target is not None and answered else None,
            credits_charged_units=units,
            reservation=reservation,
            time_to_first_token_ms=first_token_ms,
            total_ms=total_ms,
            cached=usage.cached_input_tokens > 0,
            attempts=[_attempt_row(a) for a in attempts],
            outcome=outcome,
            error=error_text,
        )
        return GenerationEnd(
            generation_id=generation.pk, outcome=outcome, usage=usage, credits_units=units, error=error_text
        )


def generation_chat_stream(
    *,
    workspace: Workspace,
    user: User | None,
    model: AIModel,
    messages: list[dict[str, Any]],
    max_tokens: int | None = None,
    temperature: float | None = None,
    idempotency_key: str,
    plan_code: str | None = None,
    breaker: CircuitBreaker | None = None,
) -> GenerationStream:
    """Stream a chat answer and charge for it; see `GenerationStream` and the module docstring."""
    return GenerationStream(
        workspace=workspace,
        user=user,
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        idempotency_key=idempotency_key,
        plan_code=plan_code,
        breaker=breaker,
    )

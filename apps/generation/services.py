"""The charging pipeline: every chat generation is authorised, quoted, reserved, streamed through
the model's fallback chain (or replayed from the response cache), then settled (or released)
exactly once and logged.

    authorise → quote → credits_reserve → usage row (pending) → stream (no transaction open)
    → settle | release → usage row (final) → `generation_completed` (`signals.py`)

Authorising asks `AIModel.usable` (enabled, on an enabled and configured provider, flagged for
the capability, allowed by the workspace's plan from `workspace_plan_code`); the fallback chain
keeps only the models that pass the same test.

One driver, `generation_chat_stream` (an async iterator): one event loop carries many streams (the
WebSocket consumer, the `/v1` views) and the database steps run in database threads (`db_step`).
A thread (a task, a command, a sync test) drives it through `asgiref.sync.async_to_sync`.

How each ending is charged (the hold is always ended by the `finally` of one generator):

- the stream finished: settle the provider-reported usage, or count the delivered text when the
  provider reported none;
- a provider error after the first token, the stop button, the client gone: settle the input
  tokens plus the output tokens delivered (never zero for a delivered answer);
- nothing delivered (every provider failed before its first token, or the caller left before
  it): release — nothing is charged, prompt tokens included;
- the caller's access ended while it streamed (`access_check` answered False: the user was
  suspended or removed, the workspace deleted, the API key revoked): settle what was delivered,
  then raise `AccessRevoked`;
- the worker died: the reservation stays held with its last checkpoint (written every
  `CHECKPOINT_EVERY` delivered tokens, counted from the delivered text) and `credits_sweep`
  settles that; `generation_sweep` then closes the pending usage row with what the sweep charged.

The stream is an async context manager: `async with stream:` ends the hold on the way out
whatever happened in the caller's body (a closed socket, a send error, a cancelled task), so a
caller cannot leave a hold open by failing between two events.

Charges use the rate card the reservation was quoted with, even when a fallback model answered.
A response-cache hit is charged `RESPONSE_CACHE_RATE_PERCENT` of the same usage (see
`response_cache`). `charge=False` (free title generation, when configured) holds nothing and
logs the usage at zero credits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.events import send_on_commit
from apps.credits.exceptions import CreditsError
from apps.credits.models import RateCard, Reservation
from apps.credits.rates import credits_quote
from apps.credits.services import credits_checkpoint, credits_release, credits_reserve, credits_settle
from apps.generation import response_cache
from apps.generation.breaker import CircuitBreaker
from apps.generation.exceptions import AccessRevoked, GenerationRefused
from apps.generation.models import AIModel, Capability, Generation
from apps.generation.providers.base import (
    CHAT_OPTIONS,
    ChatRequest,
    ModelTarget,
    ProviderError,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from apps.generation.router import AllProvidersFailed, Attempt, failover_stream
from apps.generation.signals import generation_completed
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_plan_code

logger = logging.getLogger(__name__)

SERVICE = "text"
CHECKPOINT_EVERY = 4  # delivered tokens between two checkpoints of the delivered cost

_T = TypeVar("_T")


@dataclass(frozen=True)
class GenerationEnd:
    """The last event of a generation stream that was not closed by its caller."""

    generation_id: int
    outcome: str
    usage: Usage
    credits_units: int
    error: str = ""
    cached: bool = False
    finish_reason: str | None = None


GenerationEvent = TextDelta | ToolCallDelta | GenerationEnd


def _authorise(model: AIModel, capability: Capability, plan_code: str | None) -> None:
    """Refuse, saying why, a model the workspace may not use for `capability` (`AIModel.usable`
    decides)."""
    if model.usable(capability, plan_code=plan_code):
        return
    if not model.allowed_for_plan(plan_code):
        raise GenerationRefused(f"Your plan does not include {model.model_id}.")
    raise GenerationRefused(f"The model {model.model_id} is not available for {capability.label.lower()}.")


def generation_chain(*, model: AIModel, capability: Capability, plan_code: str | None) -> list[ModelTarget]:
    """The model's target, then the fallbacks the workspace may use for `capability`, in position
    order."""
    chain = [model.target()]
    links = model.fallback_links.select_related("fallback__provider").order_by("position", "id")
    chain += [link.fallback.target() for link in links if link.fallback.usable(capability, plan_code=plan_code)]
    return chain


def _announce(generation: Generation) -> None:
    """`generation_completed` for a usage row that just got its final outcome (on commit)."""
    send_on_commit(generation_completed, sender=Generation, generation=generation)


@transaction.atomic(savepoint=False)
def generation_usage_record(
    *,
    workspace_id: int,
    capability: Capability | str,
    model: AIModel | None,
    model_label: str,
    outcome: str,
    reference: str,
    credits_charged_units: int = 0,
    reservation_id: int | None = None,
    user_id: int | None = None,
    api_key_id: int | None = None,
    total_ms: int | None = None,
    error: str = "",
) -> Generation:
    """Log usage that did not run through the chat/embeddings pipeline (a finished media job)
    on the usage log, so that reports read one table, and announce it (`generation_completed`,
    on commit). Runs in the caller's transaction, the one that ends the work: the row and the
    ending commit together, once."""
    generation = Generation.objects.create(
        workspace_id=workspace_id,
        capability=capability,
        reference=reference,
        user_id=user_id,
        api_key_id=api_key_id,
        model=model,
        model_label=model_label,
        provider_kind=model.provider.kind if model is not None else "",
        upstream_model=model.upstream_model if model is not None else "",
        usage_reported=True,
        credits_charged_units=credits_charged_units,
        reservation_id=reservation_id,
        total_ms=total_ms,
        outcome=outcome,
        error=error[:2000],
    )
    _announce(generation)
    return generation


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


def _cache_settings() -> tuple[int, int]:
    """(TTL seconds, price percent) from the admin."""
    from constance import config

    return int(config.RESPONSE_CACHE_TTL_SECONDS), int(config.RESPONSE_CACHE_RATE_PERCENT)


_db_executor: ThreadPoolExecutor | None = None


def _db_threads() -> ThreadPoolExecutor:
    global _db_executor
    if _db_executor is None:
        _db_executor = ThreadPoolExecutor(max_workers=settings.DB_STEP_THREADS, thread_name_prefix="db-step")
    return _db_executor


def _run_db_step(step: Callable[..., _T], *args: Any) -> _T:
    close_old_connections()
    try:
        return step(*args)
    finally:
        close_old_connections()  # back to the pool (or closed): no connection outlives a step


async def db_step(step: Callable[..., _T], *args: Any) -> _T:
    """Run a database step in one of the process's database threads (`DB_STEP_THREADS`), so
    many streams' steps proceed in parallel instead of queueing behind one shared thread. A
    cancellation (stop button, client gone) does not interrupt the step: it runs to its end and
    the cancellation lands after it, so the stream's state (the reservation, the usage row) is
    always known when the stream ends. The steps of one stream are awaited one after another."""
    if settings.DB_STEP_THREADS > 0:
        pending = sync_to_async(_run_db_step, thread_sensitive=False, executor=_db_threads())(step, *args)
    else:
        pending = database_sync_to_async(step)(*args)  # Django's one shared sync thread
    call = asyncio.ensure_future(pending)
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await call
        raise


class ChatGeneration(AsyncIterator[GenerationEvent]):
    """One chat generation as an async iterator of deltas (`TextDelta`, `ToolCallDelta`) ending
    with a `GenerationEnd`.

    Nothing happens until the first `__anext__()`; refusals (`GenerationRefused`, `CreditsError`
    such as `InsufficientCredits`) and `AllProvidersFailed` are raised from it, after the usage
    row is written and the hold released. To stop early, `await aclose(outcome)` (`stopped` for
    the stop button, `client_gone` when the client went away), or set `close_outcome` and cancel
    the task iterating it; the delivered part is charged either way."""

    _events: AsyncGenerator[GenerationEvent, None] | None = None
    _checkpointing: asyncio.Future[None] | None = None
    _access: asyncio.Future[bool] | None = None
    _access_checked_at: float = 0.0

    def __init__(
        self,
        *,
        workspace: Workspace,
        user: User | None,
        model: AIModel,
        messages: list[dict[str, Any]],
        idempotency_key: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        plan_code: str | None = None,
        breaker: CircuitBreaker | None = None,
        cache: bool | None = None,
        charge: bool = True,
        options: dict[str, Any] | None = None,
        api_key: Any = None,
        reserve: Callable[..., Reservation] | None = None,
        access_check: Callable[[], bool] | None = None,
    ) -> None:
        """`cache`: use the response cache (None: as the workspace chose); `charge=False`:
        hold and charge nothing (the usage is still logged); `options`: request parameters
        passed through to the provider (`CHAT_OPTIONS`: top_p, stop, tools...); `api_key`: the
        workspace API key making the call (logged on the usage row); `reserve`: holds the
        credits instead of `credits_reserve`, with its arguments (e.g. checking the key's
        spending cap first; raise `GenerationRefused` to refuse); `access_check`: a database
        step answering whether the caller may still use the workspace, run in the background
        at most every `STREAM_ACCESS_RECHECK_SECONDS` while the answer streams; when it answers
        False the stream ends (`AccessRevoked`)."""
        self.workspace = workspace
        self.user = user
        self.model = model
        self.messages = messages
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.idempotency_key = idempotency_key
        self.plan_code = plan_code
        self.breaker = breaker
        self.cache = cache
        self.charge = charge
        self.close_outcome: str = Generation.Outcome.STOPPED
        self.generation: Generation | None = None
        self.reservation: Reservation | None = None
        self.hit: response_cache.CachedAnswer | None = None
        self.started = time.monotonic()
        unknown = set(options or {}) - set(CHAT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown chat options: {sorted(unknown)}")
        self.request = ChatRequest(messages=messages, temperature=temperature, **(options or {}))
        self.api_key = api_key
        self.reserve = reserve or credits_reserve
        self.input_tokens = 0
        self.rate_card: RateCard | None = None
        self.cache_key: str | None = None
        self.cache_ttl = 0
        self.cache_percent = 0
        self.chain: list[ModelTarget] = []
        self.attempts: list[Attempt] = []
        self.delivered: list[str] = []
        self.tool_text: list[str] = []  # tool-call arguments delivered, counted as output
        self.delivered_chars = 0
        self.checkpointed_tokens = 0
        self.access_check = access_check
        self.first_token_ms: int | None = None
        self.end: StreamEnd | None = None

    # ------------------------------------------------------------------------ steps

    def _log(self, **fields: Any) -> Generation:
        """Write the usage row: create it (pending, or refused), or complete the pending one.
        A row that gets its final outcome here is announced; completing a row that was already
        closed (by the sweeper) updates it without announcing it again."""
        if self.generation is None:
            self.generation = Generation.objects.create(
                workspace=self.workspace,
                user=self.user if self.user is not None and self.user.pk else None,
                api_key=self.api_key,
                model=self.model,
                model_label=self.model.model_id,
                **fields,
            )
            closed = self.generation.outcome != Generation.Outcome.PENDING
        else:
            for name, value in fields.items():
                setattr(self.generation, name, value)
            # Conditional, so that the row is announced once whoever closes it first.
            closed = bool(
                Generation.objects.filter(pk=self.generation.pk, outcome=Generation.Outcome.PENDING).update(**fields)
            )
            if not closed:
                self.generation.save(update_fields=list(fields))
        if closed:
            _announce(self.generation)
        return self.generation

    def _use_cache(self) -> bool:
        wanted = self.workspace.response_cache if self.cache is None else self.cache
        return bool(wanted) and response_cache.cacheable(self.request)

    def _prepare(self) -> None:
        """Authorise, quote, look up the cache, reserve, write the pending usage row. Refusals
        are logged, then raised (`GenerationRefused`, `CreditsError`)."""
        model = self.model
        try:
            if self.plan_code is None:
                self.plan_code = workspace_plan_code(self.workspace)
            _authorise(model, Capability.CHAT, self.plan_code)
            max_output = min(self.max_tokens or model.max_output_tokens, model.max_output_tokens)
            self.request.max_tokens = max_output
            self.input_tokens = count_message_tokens(model.upstream_model, self.messages)
            if self._use_cache():
                self.cache_ttl, self.cache_percent = _cache_settings()
                self.cache_key = response_cache.cache_key(
                    workspace_id=self.workspace.pk,
                    model_id=model.model_id,
                    upstream_model=model.upstream_model,
                    request=self.request,
                )
                self.hit = response_cache.cache_get(self.cache_key)
            if self.hit is not None:
                usage = self.hit.usage
                quote = credits_quote(
                    service=SERVICE,
                    model=model.model_id,
                    input_tokens=usage.input_tokens - min(usage.cached_input_tokens, usage.input_tokens),
                    output_tokens=usage.output_tokens,
                    cached_input_tokens=min(usage.cached_input_tokens, usage.input_tokens),
                )
                units = response_cache.cache_price(quote.units, self.cache_percent)
            else:
                quote = credits_quote(
                    service=SERVICE, model=model.model_id, input_tokens=self.input_tokens, output_tokens=max_output
                )
                units = quote.units
            self.rate_card = quote.rate_card
            if self.charge and units > 0:
                reservation = self.reserve(
                    workspace=self.workspace,
                    units=units,
                    idempotency_key=self.idempotency_key,
                    user=self.user,
                    service=SERVICE,
                    model=model.model_id,
                    rate_card=quote.rate_card,
                )
                if reservation.status != Reservation.Status.HELD:
                    raise GenerationRefused("This request was already processed.")
                self.reservation = reservation
            if self.hit is None:
                self.chain = generation_chain(model=model, capability=Capability.CHAT, plan_code=self.plan_code)
                self.breaker = self.breaker or CircuitBreaker.from_config()
        except (GenerationRefused, CreditsError) as exc:
            self._log(
                provider_kind=model.provider.kind,
                upstream_model=model.upstream_model,
                usage_reported=False,
                outcome=Generation.Outcome.REFUSED,
                error=exc.message,
            )
            raise
        # Written before the call, so a worker that dies mid-stream still leaves a usage row
        # (closed by `generation_sweep` with what the reservation sweep charged).
        self._log(
            provider_kind=model.provider.kind,
            upstream_model=model.upstream_model,
            usage_reported=False,
            reservation=self.reservation,
            cached=self.hit is not None,
            outcome=Generation.Outcome.PENDING,
        )

    def _took(self, delta: TextDelta | ToolCallDelta) -> bool:
        """Record a delivered delta; True when a checkpoint is due."""
        if self.first_token_ms is None:
            self.first_token_ms = round((time.monotonic() - self.started) * 1000)
        if isinstance(delta, TextDelta):
            self.delivered.append(delta.text)
            self.delivered_chars += len(delta.text)
        else:
            self.tool_text.append(delta.arguments)
            self.delivered_chars += len(delta.arguments)
        return self.reservation is not None and self._delivered_tokens() - self.checkpointed_tokens >= CHECKPOINT_EVERY

    def _delivered_tokens(self) -> int:
        """Output tokens delivered so far, from the text (without running a tokenizer on every
        delta): at least one per delta, at least one per four characters."""
        return max(len(self.delivered) + len(self.tool_text), -(-self.delivered_chars // 4))

    def _checkpoint(self) -> None:
        """Record the cost delivered so far, for the sweeper: a worker that dies is charged
        within `CHECKPOINT_EVERY` tokens of what it delivered."""
        reservation = self.reservation
        if reservation is None:
            return
        tokens = self._delivered_tokens()
        self.checkpointed_tokens = tokens
        try:
            units = credits_quote(
                service=SERVICE,
                model=reservation.model,
                rate_card=reservation.rate_card,
                input_tokens=self.input_tokens,
                output_tokens=tokens,
            ).units
            if self.hit is not None:
                units = response_cache.cache_price(units, self.cache_percent)
            credits_checkpoint(reservation=reservation, delivered_units=units)
        except Exception:  # a missed checkpoint only makes a crash cheaper for the user
            logger.warning("checkpoint failed for reservation %s", reservation.pk, exc_info=True)

    def _cached_events(self) -> list[StreamEvent]:
        assert self.hit is not None
        return [*(TextDelta(text) for text in self.hit.deltas), StreamEnd(usage=self.hit.usage, finish_reason="stop")]

    def _usage(self, target: ModelTarget | None, delivered: str) -> Usage:
        end = self.end
        upstream = target.upstream_model if target is not None else self.model.upstream_model
        if end is not None and end.usage is not None and end.usage.reported:
            usage = end.usage
            if delivered and usage.output_tokens == 0:  # never settle a delivered answer at zero
                output = max(count_tokens(upstream, delivered), 1)
                usage = Usage(usage.input_tokens, output, usage.cached_input_tokens, reported=False)
            return usage
        input_tokens = self.input_tokens
        if self.hit is not None:
            input_tokens = self.hit.usage.input_tokens
        elif target is not None and target.upstream_model != self.model.upstream_model:
            input_tokens = count_message_tokens(target.upstream_model, self.messages)
        output = max(count_tokens(upstream, delivered), 1) if delivered else 0
        return Usage(input_tokens=input_tokens, output_tokens=output, reported=False)

    def _units(self, usage: Usage) -> int:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        units = credits_quote(
            service=SERVICE,
            model=self.model.model_id,
            rate_card=self.reservation.rate_card if self.reservation is not None else self.rate_card,
            input_tokens=usage.input_tokens - cached,
            output_tokens=usage.output_tokens,
            cached_input_tokens=cached,
        ).units
        if self.hit is not None:
            units = response_cache.cache_price(units, self.cache_percent)
        return units

    def _finish(self, outcome: str, error: BaseException | None) -> GenerationEnd:
        """Settle or release the hold (once), complete the usage row, fill the cache."""
        if self.hit is not None:
            target: ModelTarget | None = self.model.target()
            attempt_rows = [{"model": self.hit.model, "outcome": "cached"}]
        else:
            used = next((a for a in reversed(self.attempts) if a.delivered or a.outcome == "ok"), None)
            target = used.target if used is not None else None
            attempt_rows = [_attempt_row(a) for a in self.attempts]
        delivered = "".join(self.delivered) + "".join(self.tool_text)
        answered = bool(delivered) or outcome == Generation.Outcome.OK
        usage = self._usage(target, delivered) if answered else Usage(0, 0, reported=False)
        units = 0
        reservation = self.reservation
        if reservation is not None:
            try:
                if answered:
                    ended = credits_settle(
                        reservation=reservation,
                        actual_units=self._units(usage),
                        usage={
                            "input_tokens": usage.input_tokens,
                            "output_tokens": usage.output_tokens,
                            "cached_input_tokens": usage.cached_input_tokens,
                            "reported": usage.reported,
                            "outcome": outcome,
                            "response_cache": self.hit is not None,
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
        if self.hit is not None:
            cost: Decimal | None = Decimal(0)  # nothing was sent upstream
        else:
            cost = _provider_cost(target, usage) if target is not None and answered else None
        generation = self._log(
            provider_kind=target.provider.kind if target else self.model.provider.kind,
            upstream_model=target.upstream_model if target else self.model.upstream_model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            usage_reported=usage.reported,
            provider_cost=cost,
            credits_charged_units=units,
            time_to_first_token_ms=self.first_token_ms,
            total_ms=round((time.monotonic() - self.started) * 1000),
            cached=self.hit is not None,
            attempts=attempt_rows,
            outcome=outcome,
            error=error_text,
        )
        if self.cache_key and self.hit is None and outcome == Generation.Outcome.OK and target is not None:
            answer = response_cache.CachedAnswer(deltas=list(self.delivered), usage=usage, model=target.label)
            response_cache.cache_put(self.cache_key, answer, ttl=self.cache_ttl)
        return GenerationEnd(
            generation_id=generation.pk,
            outcome=outcome,
            usage=usage,
            credits_units=units,
            error=error_text,
            cached=self.hit is not None,
            finish_reason=self.end.finish_reason if self.end is not None else None,
        )

    # ------------------------------------------------------------------------ the stream

    def __aiter__(self) -> ChatGeneration:
        return self

    async def __anext__(self) -> GenerationEvent:
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self, outcome: str | None = None) -> None:
        """Stop now and charge what was delivered; `outcome` (stopped, client_gone) defaults
        to `close_outcome`. Ending an ended stream changes nothing."""
        if outcome is not None:
            self.close_outcome = outcome
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> ChatGeneration:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Runs whatever the body raised (a failed send, a cancelled task, a bug): the hold is
        # settled for what was delivered, or released, before the exception goes on. Shielded,
        # so a second cancellation cannot interrupt the settlement half-way.
        task = asyncio.ensure_future(self.aclose())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    def not_delivered(self, delta: TextDelta) -> None:
        """The caller could not pass on the delta it just took (its client is gone): that delta
        is not charged. Call it before ending the stream."""
        if self.delivered and self.delivered[-1] == delta.text:
            self.delivered.pop()
            self.delivered_chars -= len(delta.text)

    def _access_lost(self) -> bool:
        """Start a background access check when one is due; True once one answered False."""
        if self.access_check is None:
            return False
        if self._access is not None and self._access.done():
            lost = self._access.exception() is None and self._access.result() is False
            self._access = None
            if lost:
                return True
        now = time.monotonic()
        if self._access is None and now - self._access_checked_at >= settings.STREAM_ACCESS_RECHECK_SECONDS:
            self._access_checked_at = now
            self._access = asyncio.ensure_future(db_step(self.access_check))
        return False

    async def _source(self) -> AsyncGenerator[StreamEvent, None]:
        if self.hit is not None:
            for event in self._cached_events():
                await asyncio.sleep(0)  # a long cached answer must not starve other streams
                yield event
            return
        assert self.breaker is not None
        events = failover_stream(self.chain, self.request, breaker=self.breaker, on_attempt=self.attempts.append)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _run(self) -> AsyncGenerator[GenerationEvent, None]:
        try:
            await db_step(self._prepare)
        except asyncio.CancelledError:
            if self.generation is not None and self.generation.outcome == Generation.Outcome.PENDING:
                await db_step(self._finish, self.close_outcome, None)  # prepared, nothing sent: release
            raise
        self._access_checked_at = time.monotonic()  # the access was checked by the caller just now
        outcome: str = Generation.Outcome.ERROR
        error: BaseException | None = None
        # No transaction is open here (credits_reserve committed): the provider call must never
        # hold a lock or a connection in a transaction.
        events = self._source()
        try:
            try:
                async for event in events:
                    if isinstance(event, TextDelta | ToolCallDelta):
                        due = self._took(event)
                        yield event
                        # In the background, one at a time: a checkpoint queued behind other
                        # streams' database steps must not hold up this stream.
                        if due and (self._checkpointing is None or self._checkpointing.done()):
                            self._checkpointing = asyncio.ensure_future(db_step(self._checkpoint))
                        if self._access_lost():
                            raise AccessRevoked()
                    elif isinstance(event, StreamEnd):
                        self.end = event
            finally:
                await events.aclose()
            outcome = Generation.Outcome.OK
        except ProviderError as exc:
            error = exc
        except AccessRevoked as exc:
            outcome, error = Generation.Outcome.STOPPED, exc
        except (GeneratorExit, asyncio.CancelledError):
            outcome = self.close_outcome
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self._checkpointing is not None:  # the hold is ended after its last checkpoint
                with contextlib.suppress(Exception):
                    await self._checkpointing
            if self._access is not None:
                self._access.cancel()
            result = await db_step(self._finish, outcome, error)
        if isinstance(error, AllProvidersFailed | AccessRevoked):
            raise error
        yield result


# The service: `generation_chat_stream(workspace=..., user=..., model=..., messages=...,
# idempotency_key=..., [max_tokens, temperature, plan_code, breaker, cache, charge, options,
# api_key, reserve, access_check])` streams a chat answer and charges for it (see the module
# docstring).
generation_chat_stream = ChatGeneration


# ---------------------------------------------------------------------------- sweeping


def generation_sweep(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Close usage rows left pending by a worker that died: once their reservation has been
    ended (by `credits_sweep`), or when they hold none, record the outcome `interrupted` with
    what was charged. Returns the rows closed."""
    now = now or timezone.now()
    stale = Generation.objects.filter(
        outcome=Generation.Outcome.PENDING, created_at__lt=now - older_than
    ).select_related("reservation")
    closed = 0
    for generation in stale:
        reservation = generation.reservation
        if reservation is not None and reservation.status == Reservation.Status.HELD:
            continue  # the reservation sweep has not ended it yet
        usage = reservation.usage if reservation is not None else {}
        fields = {
            "outcome": Generation.Outcome.INTERRUPTED,
            "credits_charged_units": reservation.charged_units if reservation is not None else 0,
            "input_tokens": int(usage.get("input_tokens", 0) or 0),
            "output_tokens": int(usage.get("output_tokens", 0) or 0),
            "error": "The generation was interrupted (worker stopped); the delivered part was charged.",
        }
        # Conditional: the stream may have ended its row meanwhile (it announced it then).
        if Generation.objects.filter(pk=generation.pk, outcome=Generation.Outcome.PENDING).update(**fields):
            for name, value in fields.items():
                setattr(generation, name, value)
            _announce(generation)
            closed += 1
    return closed


# ---------------------------------------------------------------------------- embeddings

EMBEDDINGS_SERVICE = "embeddings"


@dataclass(frozen=True)
class EmbeddingsResult:
    vectors: list[list[float]]
    input_tokens: int
    credits_units: int
    generation_id: int
    model_label: str


def _embed_prepare(
    *,
    workspace: Workspace,
    user: User | None,
    model: AIModel,
    inputs: list[str],
    idempotency_key: str,
    plan_code: str | None,
    api_key: Any,
    reserve: Callable[..., Reservation],
) -> tuple[Reservation, list[ModelTarget], int]:
    """Authorise, count, quote and reserve an embeddings call (refusals are logged, then raised)."""

    def refuse(exc: GenerationRefused | CreditsError) -> None:
        _embeddings_row(
            workspace=workspace,
            user=user,
            api_key=api_key,
            model=model,
            target=None,
            usage_reported=False,
            outcome=Generation.Outcome.REFUSED,
            error=exc.message,
        )
        raise exc

    if plan_code is None:
        plan_code = workspace_plan_code(workspace)
    try:
        _authorise(model, Capability.EMBEDDINGS, plan_code)
        tokens = sum(count_tokens(model.upstream_model, text) for text in inputs)
        quote = credits_quote(service=EMBEDDINGS_SERVICE, model=model.model_id, input_tokens=tokens)
        reservation = reserve(
            workspace=workspace,
            units=max(quote.units, 1),
            idempotency_key=idempotency_key,
            user=user,
            service=EMBEDDINGS_SERVICE,
            model=model.model_id,
            rate_card=quote.rate_card,
        )
        if reservation.status != Reservation.Status.HELD:
            raise GenerationRefused("This request was already processed.")
    except (GenerationRefused, CreditsError) as exc:
        refuse(exc)
        raise  # unreachable
    chain = generation_chain(model=model, capability=Capability.EMBEDDINGS, plan_code=plan_code)
    return reservation, chain, tokens


def _embed_finish(
    *,
    workspace: Workspace,
    user: User | None,
    api_key: Any,
    model: AIModel,
    reservation: Reservation,
    target: ModelTarget | None,
    result: Any,
    attempts: list[dict[str, Any]],
    error: str,
    total_ms: int,
) -> Generation:
    units = 0
    input_tokens = 0
    if result is not None:
        input_tokens = result.input_tokens
        units = credits_quote(
            service=EMBEDDINGS_SERVICE, model=model.model_id, rate_card=reservation.rate_card, input_tokens=input_tokens
        ).units
        ended = credits_settle(
            reservation=reservation,
            actual_units=units,
            usage={"input_tokens": input_tokens, "reported": result.reported, "items": len(result.vectors)},
            reason="embeddings ok",
        )
    else:
        ended = credits_release(reservation=reservation, reason="embeddings failed: nothing delivered")
    usage = Usage(input_tokens, 0, reported=bool(result is not None and result.reported))
    return _embeddings_row(
        workspace=workspace,
        user=user,
        api_key=api_key,
        model=model,
        target=target,
        input_tokens=input_tokens,
        usage_reported=usage.reported,
        provider_cost=_provider_cost(target, usage) if target is not None and result is not None else None,
        credits_charged_units=ended.charged_units,
        reservation=reservation,
        total_ms=total_ms,
        attempts=attempts,
        outcome=Generation.Outcome.OK if result is not None else Generation.Outcome.ERROR,
        error=error,
    )


def _embeddings_row(
    *, workspace: Workspace, user: User | None, api_key: Any, model: AIModel, target: ModelTarget | None, **fields: Any
) -> Generation:
    """Log an embeddings call's usage row (answered by `target`, or by none) and announce it."""
    generation = Generation.objects.create(
        workspace=workspace,
        capability=Capability.EMBEDDINGS,
        user=user if user is not None and user.pk else None,
        api_key=api_key,
        model=model,
        model_label=model.model_id,
        provider_kind=target.provider.kind if target else model.provider.kind,
        upstream_model=target.upstream_model if target else model.upstream_model,
        **fields,
    )
    _announce(generation)
    return generation


async def generation_aembed(
    *,
    workspace: Workspace,
    user: User | None,
    model: AIModel,
    inputs: list[str],
    idempotency_key: str,
    dimensions: int | None = None,
    plan_code: str | None = None,
    api_key: Any = None,
    reserve: Callable[..., Reservation] | None = None,
    breaker: CircuitBreaker | None = None,
) -> EmbeddingsResult:
    """Embed `inputs` and charge for the input tokens (reserve → call → settle, or release when
    every target of the chain failed: `AllProvidersFailed`). The model and its fallbacks must be
    usable for embeddings by the workspace's plan (`plan_code`, looked up when not given)."""
    from apps.generation.providers.registry import aembed

    started = time.monotonic()
    reservation, chain, _ = await db_step(
        partial(
            _embed_prepare,
            workspace=workspace,
            user=user,
            model=model,
            inputs=inputs,
            idempotency_key=idempotency_key,
            plan_code=plan_code,
            api_key=api_key,
            reserve=reserve or credits_reserve,
        )
    )
    guard: CircuitBreaker = breaker if breaker is not None else await db_step(CircuitBreaker.from_config)
    attempts: list[Attempt] = []
    result = None
    used: ModelTarget | None = None
    try:
        for target in chain:
            if not await guard.aallow(target.breaker_key):
                attempts.append(Attempt(target, "skipped", None, time.time(), None, time.time()))
                continue
            began = time.time()
            try:
                result = await aembed(target, inputs, dimensions=dimensions)
            except ProviderError as exc:
                if exc.retryable:
                    await guard.arecord_failure(target.breaker_key)
                else:
                    await guard.arelease(target.breaker_key)
                attempts.append(Attempt(target, "error", exc, began, None, time.time()))
                continue
            await guard.arecord_success(target.breaker_key)
            attempts.append(Attempt(target, "ok", None, began, None, time.time()))
            used = target
            break
    finally:
        error = "" if result is not None else "; ".join(a.error.message for a in attempts if a.error) or "cancelled"
        generation = await db_step(
            partial(
                _embed_finish,
                workspace=workspace,
                user=user,
                api_key=api_key,
                model=model,
                reservation=reservation,
                target=used,
                result=result,
                attempts=[_attempt_row(a) for a in attempts],
                error=error,
                total_ms=round((time.monotonic() - started) * 1000),
            )
        )
    if result is None:
        raise AllProvidersFailed(attempts)
    return EmbeddingsResult(
        vectors=result.vectors,
        input_tokens=result.input_tokens,
        credits_units=generation.credits_charged_units,
        generation_id=generation.pk,
        model_label=used.label if used else model.model_id,
    )

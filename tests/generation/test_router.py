"""Failover across the chain with circuit breakers, against the fake upstream and the mock."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from apps.generation.breaker import CLOSED, OPEN, CircuitBreaker
from apps.generation.providers import ChatRequest, ModelTarget, ProviderError, ProviderKind, StreamEnd, StreamEvent
from apps.generation.router import AllProvidersFailed, Attempt, failover_stream
from tests.fakes.upstream import FakeUpstream
from tests.generation.helpers import ECHO, FakeClock, chat, deltas, end_of, fake_target, mock_target, text_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    # Opens on the first counted failure, so each test sees whether a failure counted.
    return CircuitBreaker(failure_threshold=1, window=60, cooldown=30, clock=clock)


def run(
    chain: list[ModelTarget], breaker: CircuitBreaker, request: ChatRequest | None = None
) -> tuple[list[StreamEvent], list[Attempt]]:
    attempts: list[Attempt] = []

    async def collect() -> list[StreamEvent]:
        stream = failover_stream(chain, request or chat(), breaker=breaker, on_attempt=attempts.append)
        return [event async for event in stream]

    return asyncio.run(collect()), attempts


def run_until_error(
    chain: list[ModelTarget], breaker: CircuitBreaker
) -> tuple[list[StreamEvent], list[Attempt], ProviderError]:
    attempts: list[Attempt] = []
    received: list[StreamEvent] = []

    async def collect() -> None:
        async for event in failover_stream(chain, chat(), breaker=breaker, on_attempt=attempts.append):
            received.append(event)

    with pytest.raises(ProviderError) as caught:
        asyncio.run(collect())
    return received, attempts, caught.value


def test_fails_over_to_the_next_target_before_the_first_token(upstream: FakeUpstream, breaker: CircuitBreaker) -> None:
    primary = fake_target(upstream, "fake-fail-before:500", kind=ProviderKind.OPENAI)
    fallback = fake_target(upstream, "fake-fast", kind=ProviderKind.ANTHROPIC)

    events, attempts = run([primary, fallback], breaker)

    assert text_of(events) == ECHO
    assert end_of(events).usage is not None
    assert [(a.target, a.outcome) for a in attempts] == [(primary, "error"), (fallback, "ok")]
    failed, served = attempts
    assert failed.error is not None
    assert failed.error.status_code == 500
    assert failed.first_token_at is None
    assert served.error is None
    assert served.first_token_at is not None
    assert served.started_at <= served.first_token_at <= served.ended_at
    assert [r["path"] for r in upstream.requests] == ["/v1/chat/completions", "/v1/messages"]
    assert breaker.state(primary.breaker_key) == OPEN
    assert breaker.state(fallback.breaker_key) == CLOSED


def test_never_fails_over_after_the_first_token(upstream: FakeUpstream, breaker: CircuitBreaker) -> None:
    primary = fake_target(upstream, "fake-fail-after:3")
    fallback = fake_target(upstream, "fake-fast", kind=ProviderKind.ANTHROPIC)

    received, attempts, error = run_until_error([primary, fallback], breaker)

    assert len(deltas(received)) == len(received) == 3
    assert not isinstance(error, AllProvidersFailed)
    assert error.retryable is True
    [attempt] = attempts
    assert attempt.outcome == "error"
    assert attempt.delivered
    assert attempt.error is error
    assert [r["path"] for r in upstream.requests] == ["/v1/chat/completions"]  # fallback never asked
    assert breaker.state(primary.breaker_key) == OPEN


@pytest.mark.parametrize(("status", "counted"), [(429, True), (503, True), (400, False), (401, False)])
def test_only_retryable_errors_count_on_the_breaker_but_all_fail_over(
    upstream: FakeUpstream, breaker: CircuitBreaker, status: int, counted: bool
) -> None:
    primary = fake_target(upstream, f"fake-fail-before:{status}")

    events, attempts = run([primary, mock_target()], breaker)

    assert text_of(events) == ECHO
    assert [a.outcome for a in attempts] == ["error", "ok"]
    assert breaker.state(primary.breaker_key) == (OPEN if counted else CLOSED)


def test_a_timeout_is_retryable_and_fails_over(upstream: FakeUpstream, breaker: CircuitBreaker) -> None:
    primary = fake_target(upstream, "fake-hang", timeout=0.3)

    events, attempts = run([primary, mock_target()], breaker)

    assert text_of(events) == ECHO
    assert attempts[0].error is not None
    assert attempts[0].error.retryable
    assert breaker.state(primary.breaker_key) == OPEN


def test_skips_targets_whose_breaker_is_open(upstream: FakeUpstream, breaker: CircuitBreaker) -> None:
    primary = fake_target(upstream, "fake-fast")
    breaker.record_failure(primary.breaker_key)

    events, attempts = run([primary, mock_target()], breaker)

    assert text_of(events) == ECHO
    assert [a.outcome for a in attempts] == ["skipped", "ok"]
    assert upstream.requests == []


def test_after_the_cooldown_one_probe_goes_through_and_closes_the_breaker(
    upstream: FakeUpstream, breaker: CircuitBreaker, clock: FakeClock
) -> None:
    primary = fake_target(upstream, "fake-fast")
    breaker.record_failure(primary.breaker_key)
    clock.advance(30)

    _events, attempts = run([primary, mock_target()], breaker)

    assert [(a.target, a.outcome) for a in attempts] == [(primary, "ok")]
    assert len(upstream.requests) == 1
    assert breaker.state(primary.breaker_key) == CLOSED


def test_a_failed_probe_reopens_the_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    primary = mock_target("mock-primary", fail="before:503")
    breaker.record_failure(primary.breaker_key)
    clock.advance(30)

    _events, attempts = run([primary, mock_target()], breaker)

    assert [a.outcome for a in attempts] == ["error", "ok"]
    assert breaker.state(primary.breaker_key) == OPEN
    assert breaker.allow(primary.breaker_key) is False


def test_raises_all_providers_failed_when_nothing_delivered(breaker: CircuitBreaker) -> None:
    broken = mock_target("mock-a", fail="before:500")
    misconfigured = mock_target("mock-b", fail="before:401")
    tripped = mock_target("mock-c")
    timed_out = mock_target("mock-d", fail="before:timeout")
    breaker.record_failure(tripped.breaker_key)

    received, attempts, error = run_until_error([broken, misconfigured, tripped, timed_out], breaker)

    assert received == []
    assert isinstance(error, AllProvidersFailed)
    assert error.attempts == attempts
    assert [a.outcome for a in attempts] == ["error", "error", "skipped", "error"]
    assert error.retryable is True  # worth trying again later


def test_a_chain_of_configuration_errors_is_not_retryable(breaker: CircuitBreaker) -> None:
    _received, _attempts, error = run_until_error([mock_target("mock-a", fail="before:401")], breaker)
    assert isinstance(error, AllProvidersFailed)
    assert error.retryable is False
    assert error.status_code == 401


def test_an_empty_chain_fails(breaker: CircuitBreaker) -> None:
    with pytest.raises(AllProvidersFailed) as caught:
        run([], breaker)
    assert caught.value.retryable is False


def test_a_stream_closed_by_the_caller_is_recorded_as_cancelled(breaker: CircuitBreaker) -> None:
    attempts: list[Attempt] = []

    async def read_one() -> None:
        stream = failover_stream([mock_target()], chat(), breaker=breaker, on_attempt=attempts.append)
        async with aclosing(stream):
            await anext(stream)

    asyncio.run(read_one())
    [attempt] = attempts
    assert attempt.outcome == "cancelled"
    assert attempt.delivered
    assert attempt.error is None


def test_a_cancelled_task_is_recorded_as_cancelled_and_says_nothing_about_the_upstream(
    upstream: FakeUpstream, breaker: CircuitBreaker
) -> None:
    attempts: list[Attempt] = []
    target = fake_target(upstream, "fake-hang")

    async def cancel_while_waiting() -> None:
        async def read() -> None:
            async for _event in failover_stream([target], chat(), breaker=breaker, on_attempt=attempts.append):
                pass

        task = asyncio.ensure_future(read())
        for _ in range(500):  # until the request is upstream, waiting for the first token
            if upstream.requests or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_waiting())
    [attempt] = attempts
    assert (attempt.outcome, attempt.delivered, attempt.error) == ("cancelled", False, None)
    assert breaker.state(target.breaker_key) == CLOSED


def test_a_caller_that_stops_reading_at_the_end_leaves_one_ok_attempt(breaker: CircuitBreaker) -> None:
    attempts: list[Attempt] = []

    async def read_to_the_end() -> None:
        stream = failover_stream([mock_target()], chat(), breaker=breaker, on_attempt=attempts.append)
        async with aclosing(stream):
            async for event in stream:
                if isinstance(event, StreamEnd):
                    break

    asyncio.run(read_to_the_end())
    assert [a.outcome for a in attempts] == ["ok"]

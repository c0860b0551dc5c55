from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from apps.generation.providers import ChatRequest, ModelTarget, ProviderError, StreamEvent, chat_stream, mock
from apps.generation.tokens import count_message_tokens
from tests.generation.helpers import ECHO, chat, deltas, end_of, mock_target, text_of


def run(
    target: ModelTarget, request: ChatRequest, *, sleep: Callable[[float], Awaitable[None]] | None = None
) -> list[StreamEvent]:
    async def collect() -> list[StreamEvent]:
        events = mock.chat_stream(target, request) if sleep is None else mock.chat_stream(target, request, sleep=sleep)
        return [event async for event in events]

    return asyncio.run(collect())


def run_until_error(target: ModelTarget) -> tuple[list[StreamEvent], ProviderError]:
    received: list[StreamEvent] = []

    async def collect() -> None:
        async for event in mock.chat_stream(target, chat()):
            received.append(event)

    with pytest.raises(ProviderError) as caught:
        asyncio.run(collect())
    return received, caught.value


def recorder(delays: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return sleep


def test_streams_a_deterministic_echo_word_by_word() -> None:
    first = run(mock_target(), chat())
    assert [d.text for d in deltas(first)] == ["Echo:", " hello", " there", " world"]
    assert first == run(mock_target(), chat())
    assert text_of(run(mock_target(), chat("something else"))) == "Echo: something else"


def test_is_what_the_dispatcher_runs_for_the_mock_kind() -> None:
    async def collect() -> list[StreamEvent]:
        return [event async for event in chat_stream(mock_target(), chat())]

    assert text_of(asyncio.run(collect())) == ECHO


def test_reports_usage_from_the_tokenizer_and_the_words_sent() -> None:
    request = chat()
    end = end_of(run(mock_target("mock-echo"), request))
    assert end.finish_reason == "stop"
    assert end.usage is not None
    assert end.usage.input_tokens == count_message_tokens("mock-echo", request.messages)
    assert end.usage.output_tokens == 4
    assert end.usage.reported is True


def test_a_fixed_reply_replaces_the_echo() -> None:
    assert text_of(run(mock_target(reply="Fixed answer here."), chat())) == "Fixed answer here."


def test_stops_at_max_tokens() -> None:
    events = run(mock_target(), chat(max_tokens=2))
    assert text_of(events) == "Echo: hello"
    end = end_of(events)
    assert end.finish_reason == "length"
    assert end.usage is not None
    assert end.usage.output_tokens == 2


def test_waits_the_configured_latency_before_each_token() -> None:
    delays: list[float] = []
    events = run(mock_target(latency_ms=25), chat(), sleep=recorder(delays))
    assert delays == [0.025] * len(deltas(events)) == [0.025] * 4


def test_without_latency_it_only_yields_to_the_event_loop() -> None:
    delays: list[float] = []
    events = run(mock_target(), chat(), sleep=recorder(delays))
    assert delays == [0.0] * len(deltas(events))  # no waiting, but never starving other tasks


@pytest.mark.parametrize(
    ("fail", "status", "retryable"),
    [("before:429", 429, True), ("before:500", 500, True), ("before:timeout", None, True), ("before:401", 401, False)],
)
def test_fails_before_the_first_token_on_request(fail: str, status: int | None, retryable: bool) -> None:
    received, error = run_until_error(mock_target(fail=fail))
    assert received == []
    assert error.status_code == status
    assert error.retryable is retryable


def test_breaks_after_n_tokens_on_request() -> None:
    received, error = run_until_error(mock_target(fail="after:2"))
    assert [d.text for d in deltas(received)] == ["Echo:", " hello"]
    assert len(received) == 2  # no StreamEnd
    assert error.retryable is True

from __future__ import annotations

import asyncio

import pytest

from apps.generation.providers import ProviderError, StreamEvent, TextDelta, mock, stream_chat
from apps.generation.tokens import count_message_tokens
from tests.generation.helpers import ECHO, chat, deltas, end_of, mock_target, text_of


def run(target, request, **kwargs) -> list[StreamEvent]:  # type: ignore[no-untyped-def]
    return list(mock.stream_chat(target, request, **kwargs))


def arun(target, request, **kwargs) -> list[StreamEvent]:  # type: ignore[no-untyped-def]
    async def collect() -> list[StreamEvent]:
        return [event async for event in mock.astream_chat(target, request, **kwargs)]

    return asyncio.run(collect())


def test_streams_a_deterministic_echo_word_by_word() -> None:
    first = run(mock_target(), chat())
    assert [d.text for d in deltas(first)] == ["Echo:", " hello", " there", " world"]
    assert first == run(mock_target(), chat())
    assert text_of(run(mock_target(), chat("something else"))) == "Echo: something else"


def test_is_what_the_dispatcher_runs_for_the_mock_kind() -> None:
    assert text_of(list(stream_chat(mock_target(), chat()))) == ECHO


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
    events = run(mock_target(latency_ms=25), chat(), sleep=delays.append)
    assert delays == [0.025] * len(deltas(events)) == [0.025] * 4


def test_without_latency_it_never_sleeps() -> None:
    delays: list[float] = []
    run(mock_target(), chat(), sleep=delays.append)
    assert delays == []


@pytest.mark.parametrize(
    ("fail", "status", "retryable"),
    [("before:429", 429, True), ("before:500", 500, True), ("before:timeout", None, True), ("before:401", 401, False)],
)
def test_fails_before_the_first_token_on_request(fail: str, status: int | None, retryable: bool) -> None:
    received: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        received.extend(mock.stream_chat(mock_target(fail=fail), chat()))
    assert received == []
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable


def test_breaks_after_n_tokens_on_request() -> None:
    received: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        received.extend(mock.stream_chat(mock_target(fail="after:2"), chat()))
    assert [d.text for d in deltas(received)] == ["Echo:", " hello"]
    assert len(received) == 2  # no StreamEnd
    assert caught.value.retryable is True


def test_async_stream_matches_the_sync_one_and_awaits_the_latency() -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    events = arun(mock_target(latency_ms=10), chat(), sleep=record)
    assert events == run(mock_target(latency_ms=10), chat(), sleep=lambda _: None)
    assert delays == [0.01] * 4


def test_async_stream_fails_like_the_sync_one() -> None:
    received: list[StreamEvent] = []

    async def collect() -> None:
        async for event in mock.astream_chat(mock_target(fail="after:3"), chat()):
            received.append(event)

    with pytest.raises(ProviderError):
        asyncio.run(collect())
    assert all(isinstance(e, TextDelta) for e in received)
    assert len(received) == 3
    with pytest.raises(ProviderError) as caught:
        arun(mock_target(fail="before:429"), chat())
    assert caught.value.status_code == 429

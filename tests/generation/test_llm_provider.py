"""The litellm-backed providers against the local fake upstream (real litellm and SDK code runs)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from apps.generation.providers import (
    ChatRequest,
    ModelTarget,
    ProviderConfig,
    ProviderError,
    ProviderKind,
    StreamEvent,
    TextDelta,
    Usage,
    chat_stream,
    provider_cost,
)
from apps.generation.providers.llm import completion_kwargs, litellm_model
from apps.generation.tokens import count_message_tokens, count_tokens, load_litellm
from tests.fakes.upstream import FakeUpstream
from tests.generation.helpers import ECHO, chat, deltas, end_of, fake_target, text_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*")


def collect(target: ModelTarget, request: ChatRequest | None = None, **params: Any) -> list[StreamEvent]:
    async def run() -> list[StreamEvent]:
        return [event async for event in chat_stream(target, request or chat(**params))]

    return asyncio.run(run())


def collect_until_error(target: ModelTarget) -> tuple[list[StreamEvent], ProviderError]:
    received: list[StreamEvent] = []

    async def run() -> None:
        async for event in chat_stream(target, chat()):
            received.append(event)

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run())
    return received, caught.value


# ------------------------------------------------------------------------------ happy paths


def test_openai_streams_text_and_reported_usage(upstream: FakeUpstream) -> None:
    events = collect(fake_target(upstream, kind=ProviderKind.OPENAI), temperature=0.0, max_tokens=50)

    assert text_of(events) == ECHO
    assert len(deltas(events)) == 4  # one per upstream chunk, the empty role chunk dropped
    end = end_of(events)
    assert end.finish_reason == "stop"
    # The fake counts words: "Be brief." + "hello there world" = 5 prompt tokens, 4 in the reply.
    assert end.usage == Usage(input_tokens=5, output_tokens=4, cached_input_tokens=0, reported=True)
    [request] = upstream.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("fake-fast", 0.0, 50)


def test_anthropic_streams_text_and_reported_usage(upstream: FakeUpstream) -> None:
    events = collect(fake_target(upstream, kind=ProviderKind.ANTHROPIC))

    assert text_of(events) == ECHO
    end = end_of(events)
    assert end.finish_reason == "stop"
    # Anthropic takes the system prompt apart from the messages; the fake counts both.
    assert end.usage == Usage(input_tokens=5, output_tokens=4, cached_input_tokens=0, reported=True)
    [request] = upstream.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == "sk-test"
    assert request["body"]["system"][0]["text"] == "Be brief."


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (ProviderKind.OPENAI_COMPATIBLE, "/v1/chat/completions"),
        (ProviderKind.MISTRAL, "/v1/chat/completions"),
        (ProviderKind.GEMINI, "/v1beta/models/fake-fast:streamGenerateContent"),
        (ProviderKind.OLLAMA, "/api/chat"),
    ],
)
def test_other_provider_kinds_stream_through_litellm(upstream: FakeUpstream, kind: str, path: str) -> None:
    events = collect(fake_target(upstream, kind=kind))

    assert text_of(events).startswith("Echo:")
    assert "hello there world" in text_of(events)
    usage = end_of(events).usage
    assert usage is not None
    assert usage.output_tokens > 0
    assert [r["path"] for r in upstream.requests] == [path]


def test_counts_usage_when_the_upstream_reports_none(upstream: FakeUpstream) -> None:
    request = chat()
    events = collect(fake_target(upstream, "fake-no-usage"), request)

    assert text_of(events) == ECHO
    assert end_of(events).usage == Usage(
        input_tokens=count_message_tokens("fake-no-usage", request.messages),
        output_tokens=count_tokens("fake-no-usage", ECHO),
        reported=False,
    )


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.GEMINI])
def test_reports_prompt_tokens_read_from_the_providers_cache(upstream: FakeUpstream, kind: str) -> None:
    plain = end_of(collect(fake_target(upstream, "fake-fast", kind=kind))).usage
    cached = end_of(collect(fake_target(upstream, "fake-cached:2", kind=kind))).usage

    assert plain is not None
    assert cached is not None
    assert cached.cached_input_tokens == 2
    # Cached tokens are part of the input tokens, not extra.
    assert cached.input_tokens == plain.input_tokens


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC])
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (503, True), (400, False), (401, False), (403, False), (404, False)],
)
def test_maps_upstream_errors_to_provider_errors(
    upstream: FakeUpstream, kind: str, status: int, retryable: bool
) -> None:
    received, error = collect_until_error(fake_target(upstream, f"fake-fail-before:{status}", kind=kind))

    assert received == []
    assert error.status_code == status
    assert error.retryable is retryable
    assert len(upstream.requests) == 1  # litellm's own retries are off


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.GEMINI])
def test_a_connection_broken_mid_stream_is_retryable(upstream: FakeUpstream, kind: str) -> None:
    received, error = collect_until_error(fake_target(upstream, "fake-fail-after:3", kind=kind))

    assert len(deltas(received)) == len(received) == 3  # no StreamEnd
    assert text_of(received).startswith("Echo:")
    assert error.retryable is True


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.GEMINI])
def test_an_upstream_that_never_answers_times_out_as_retryable(upstream: FakeUpstream, kind: str) -> None:
    load_litellm()  # its first import (seconds) is not the upstream's time
    started = time.perf_counter()
    received, error = collect_until_error(fake_target(upstream, "fake-hang", kind=kind, timeout=0.3))

    assert received == []
    assert error.retryable is True
    assert time.perf_counter() - started < 3


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.GEMINI])
def test_an_upstream_that_goes_quiet_mid_stream_times_out_as_retryable(upstream: FakeUpstream, kind: str) -> None:
    """The response started (OpenAI's first chunk carries only the role), then nothing for longer
    than the timeout: each wait for the next chunk is bounded, whatever litellm's adapter does
    (Gemini's applies no timeout to streams)."""
    load_litellm()  # its first import (seconds) is not the upstream's time
    started = time.perf_counter()
    received, error = collect_until_error(fake_target(upstream, "fake-slow:4", kind=kind, timeout=0.3))

    assert received == []
    assert error.retryable is True
    assert time.perf_counter() - started < 3  # well before the first word would have come


def test_an_openai_compatible_provider_without_base_url_is_a_configuration_error(upstream: FakeUpstream) -> None:
    target = ModelTarget(ProviderConfig(kind=ProviderKind.OPENAI_COMPATIBLE, api_key="k"), "fake-fast")
    received, error = collect_until_error(target)

    assert received == []
    assert error.retryable is False


def test_an_unknown_provider_kind_is_a_configuration_error() -> None:
    received, error = collect_until_error(ModelTarget(ProviderConfig(kind="carrier-pigeon"), "coo"))

    assert received == []
    assert error.retryable is False


def test_closing_the_stream_early_releases_the_upstream_connection(upstream: FakeUpstream) -> None:
    async def read_one() -> None:
        events = chat_stream(fake_target(upstream, "fake-slow:0.05"), chat("one two three four five six seven"))
        assert await anext(events) == TextDelta("Echo:")
        await events.aclose()  # the stop button, the client gone
        deadline = time.monotonic() + 3
        while not upstream.disconnects and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(read_one())
    assert upstream.disconnects == ["/v1/chat/completions"]


# ------------------------------------------------------------------------------ mapping, cost


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ProviderKind.OPENAI, "openai/m"),
        (ProviderKind.OPENAI_COMPATIBLE, "openai/m"),
        (ProviderKind.ANTHROPIC, "anthropic/m"),
        (ProviderKind.GEMINI, "gemini/m"),
        (ProviderKind.MISTRAL, "mistral/m"),
        (ProviderKind.OLLAMA, "ollama_chat/m"),
    ],
)
def test_maps_provider_kinds_to_litellm_models(kind: str, expected: str) -> None:
    assert litellm_model(ModelTarget(ProviderConfig(kind=kind), "m")) == expected


def test_passes_only_the_parameters_that_were_set() -> None:
    target = ModelTarget(ProviderConfig(kind=ProviderKind.OPENAI, api_key="k", base_url="http://x/v1/", timeout=7), "m")
    kwargs = completion_kwargs(target, chat(temperature=0.0))

    assert kwargs["api_base"] == "http://x/v1"
    assert (kwargs["num_retries"], kwargs["timeout"], kwargs["temperature"]) == (0, 7, 0.0)
    assert "max_tokens" not in kwargs
    assert "tools" not in kwargs
    assert "api_base" not in completion_kwargs(ModelTarget(ProviderConfig(kind=ProviderKind.OPENAI), "m"), chat())


def test_never_sends_our_openai_key_to_an_openai_compatible_endpoint(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ours")
    config = ProviderConfig(kind=ProviderKind.OPENAI_COMPATIBLE, base_url=upstream.base_url + "/v1")

    assert text_of(collect(ModelTarget(config, "fake-fast"))) == ECHO
    assert upstream.requests[0]["headers"]["Authorization"] == "Bearer none"


def test_provider_cost_comes_from_the_local_cost_map() -> None:
    # gpt-4o: $2.50 per million input tokens, $1.25 cached, $10 output.
    assert provider_cost("gpt-4o", Usage(1000, 100), kind=ProviderKind.OPENAI) == Decimal("0.0035")
    assert provider_cost("gpt-4o", Usage(1000, 100, cached_input_tokens=500)) == Decimal("0.002875")
    assert provider_cost("claude-sonnet-4-5", Usage(1000, 100), kind=ProviderKind.ANTHROPIC) == Decimal("0.0045")


def test_provider_cost_is_unknown_for_unmapped_models_and_free_for_the_mock() -> None:
    assert provider_cost("fake-fast", Usage(10, 10), kind=ProviderKind.OPENAI) is None
    assert provider_cost("gpt-4o", Usage(10, 10), kind=ProviderKind.OPENAI_COMPATIBLE) is None
    assert provider_cost("mock-echo", Usage(10, 10), kind=ProviderKind.MOCK) == Decimal(0)

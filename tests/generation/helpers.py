"""Targets and a controllable clock for the provider-layer tests."""

from __future__ import annotations

from typing import Any

from apps.generation.providers.base import (
    ChatRequest,
    ModelTarget,
    ProviderConfig,
    ProviderKind,
    StreamEnd,
    StreamEvent,
    TextDelta,
)
from tests.fakes.upstream import FakeUpstream

PROMPT = "hello there world"
# The fake upstream and the mock both answer "Echo:" followed by the words of the last user message.
ECHO = "Echo: hello there world"


def chat(text: str = PROMPT, **params: Any) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}], **params
    )


def fake_target(
    upstream: FakeUpstream, model: str = "fake-fast", *, kind: str = ProviderKind.OPENAI, timeout: float = 5.0
) -> ModelTarget:
    """A target on the fake upstream, with the base URL each provider kind expects."""
    base = {
        ProviderKind.OPENAI: "/v1",
        ProviderKind.OPENAI_COMPATIBLE: "/v1",
        ProviderKind.MISTRAL: "/v1",
        ProviderKind.GEMINI: "/v1beta",
        ProviderKind.ANTHROPIC: "",
        ProviderKind.OLLAMA: "",
    }[kind]
    config = ProviderConfig(kind=kind, api_key="sk-test", base_url=upstream.base_url + base, timeout=timeout)
    return ModelTarget(provider=config, upstream_model=model, label=f"{kind}-{model}")


def mock_target(model: str = "mock-echo", **options: Any) -> ModelTarget:
    return ModelTarget(
        provider=ProviderConfig(kind=ProviderKind.MOCK, options=options), upstream_model=model, label=model
    )


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def deltas(events: list[StreamEvent]) -> list[TextDelta]:
    return [e for e in events if isinstance(e, TextDelta)]


def end_of(events: list[StreamEvent]) -> StreamEnd:
    last = events[-1]
    assert isinstance(last, StreamEnd)
    return last


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

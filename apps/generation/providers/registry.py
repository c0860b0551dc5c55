"""One entry point for every provider: picks the mock or the litellm-backed implementation."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

from apps.generation.providers import llm, mock
from apps.generation.providers.base import ChatRequest, EmbeddingResult, ModelTarget, ProviderKind, StreamEvent


def stream_chat(target: ModelTarget, request: ChatRequest) -> Generator[StreamEvent, None, None]:
    """Stream one attempt: `TextDelta`s, then one `StreamEnd`; failures raise `ProviderError`."""
    if target.provider.kind == ProviderKind.MOCK:
        return mock.stream_chat(target, request)
    return llm.stream_chat(target, request)


def astream_chat(target: ModelTarget, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
    """The asyncio twin of `stream_chat`."""
    if target.provider.kind == ProviderKind.MOCK:
        return mock.astream_chat(target, request)
    return llm.astream_chat(target, request)


async def aembed(target: ModelTarget, inputs: list[str], *, dimensions: int | None = None) -> EmbeddingResult:
    """Embed texts with one target; failures raise `ProviderError`."""
    if target.provider.kind == ProviderKind.MOCK:
        return await mock.aembed(target, inputs, dimensions=dimensions)
    return await llm.aembed(target, inputs, dimensions=dimensions)

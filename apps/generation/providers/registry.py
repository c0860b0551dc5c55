"""One entry point for every provider: picks the mock or the litellm-backed implementation."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from apps.generation.providers import llm, mock
from apps.generation.providers.base import ChatRequest, EmbeddingResult, ModelTarget, ProviderKind, StreamEvent


def chat_stream(target: ModelTarget, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
    """Stream one attempt: `TextDelta`s, then one `StreamEnd`; failures raise `ProviderError`."""
    if target.provider.kind == ProviderKind.MOCK:
        return mock.chat_stream(target, request)
    return llm.chat_stream(target, request)


async def aembed(target: ModelTarget, inputs: list[str], *, dimensions: int | None = None) -> EmbeddingResult:
    """Embed texts with one target; failures raise `ProviderError`."""
    if target.provider.kind == ProviderKind.MOCK:
        return await mock.aembed(target, inputs, dimensions=dimensions)
    return await llm.aembed(target, inputs, dimensions=dimensions)

"""Chat providers behind one interface (see `base`). Importing this package is cheap: litellm and
the provider SDKs are imported on first use."""

from __future__ import annotations

from apps.generation.providers.base import (
    ChatRequest,
    ModelTarget,
    ProviderConfig,
    ProviderError,
    ProviderKind,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from apps.generation.providers.llm import provider_cost
from apps.generation.providers.registry import chat_stream

__all__ = [
    "ChatRequest",
    "ModelTarget",
    "ProviderConfig",
    "ProviderError",
    "ProviderKind",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "chat_stream",
    "provider_cost",
]

"""The provider interface every chat/text backend implements (mock, litellm-backed ones).

Nothing here imports a provider SDK or litellm: those are imported inside the functions that
call them, so Django starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ProviderKind:
    MOCK = "mock"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    MISTRAL = "mistral"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai_compatible"

    choices = [
        (MOCK, "Built-in mock (offline)"),
        (OPENAI, "OpenAI"),
        (ANTHROPIC, "Anthropic"),
        (GEMINI, "Google Gemini"),
        (MISTRAL, "Mistral"),
        (OLLAMA, "Ollama (local)"),
        (OPENAI_COMPATIBLE, "OpenAI-compatible endpoint"),
    ]


@dataclass(frozen=True)
class ProviderConfig:
    """Resolved credentials and options of one provider (from the admin or the environment)."""

    kind: str
    api_key: str = ""
    base_url: str = ""
    timeout: float = 60.0
    # Provider-specific options; the mock reads latency_ms, fail ("before:429", "before:500",
    # "before:timeout", "after:N"), reply (fixed text).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelTarget:
    """One concrete place to send a request: a provider and its upstream model name."""

    provider: ProviderConfig
    upstream_model: str
    label: str = ""  # catalog model id, for logs and attempts

    @property
    def breaker_key(self) -> str:
        return f"{self.provider.kind}:{self.provider.base_url}:{self.upstream_model}"


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]  # OpenAI chat format
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


# The request parameters beyond messages/temperature/max_tokens that callers may pass through.
CHAT_OPTIONS = (
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    # True when the provider reported the numbers; False when we counted delivered text.
    reported: bool = True


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of a tool call the model is making (OpenAI's streaming `tool_calls` shape):
    the first fragment of a call carries its id and function name, the rest argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class StreamEnd:
    usage: Usage | None
    finish_reason: str | None = None


StreamEvent = TextDelta | ToolCallDelta | StreamEnd
Delivered = (TextDelta, ToolCallDelta)  # events that count as output sent to the user


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    input_tokens: int
    reported: bool = True  # False when we counted the tokens ourselves


def is_retryable_status(status: int) -> bool:
    """Statuses another attempt may fix: time-out, conflict, too early, rate limit, server errors."""
    return status in (408, 409, 425, 429) or status >= 500


class ProviderError(Exception):
    """A provider call failed. `retryable` errors (429, 5xx, time-outs, connection errors) count
    against the circuit breaker and allow failover; configuration errors (other 4xx) do not."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retryable = retryable

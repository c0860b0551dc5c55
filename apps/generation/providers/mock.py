"""The built-in `mock` provider: offline, deterministic, the default when nothing is configured.

It streams a reply derived from the last user message ("Echo: <its words>", then one
`[image/<type>]` word per image part it was sent), word by word, and can be told through
`ProviderConfig.options` to be slow or to fail, for tests and demos:

- `latency_ms`: delay before each token (default 0);
- `reply`: a fixed reply instead of the echo;
- `fail`: `"before:429"`, `"before:500"`, any `"before:<status>"`, `"before:timeout"` (error
  before the first token) or `"after:N"` (the stream breaks after N tokens).

Each word is one output token in the usage it reports; input tokens are counted with the
upstream model's tokenizer (`tokens.count_message_tokens`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apps.generation.providers.base import (
    ChatRequest,
    EmbeddingResult,
    ModelTarget,
    ProviderError,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
    is_retryable_status,
)
from apps.generation.tokens import count_message_tokens, count_tokens

MAX_ECHO_WORDS = 50


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                parts = [part for part in content if isinstance(part, dict)]
                texts = [str(part.get("text", "")) for part in parts if part.get("type") == "text"]
                images = [_image_word(part) for part in parts if part.get("type") == "image_url"]
                return " ".join([*texts, *images])
            return str(content or "")
    return ""


def _image_word(part: dict[str, Any]) -> str:
    """`[image/png]` for an image sent inline (a data URL), `[image]` for one sent by address."""
    image = part.get("image_url")
    url = str(image.get("url", "") if isinstance(image, dict) else image or "")
    media_type = url[5:].partition(";")[0] if url.startswith("data:") else ""
    return f"[{media_type}]" if media_type.startswith("image/") else "[image]"


def reply_words(request: ChatRequest, options: dict[str, Any]) -> list[str]:
    """The deterministic reply: the configured `reply`, or an echo of the last user message."""
    fixed = options.get("reply")
    words = str(fixed).split() if fixed else ["Echo:", *_last_user_text(request.messages).split()[:MAX_ECHO_WORDS]]
    return words or ["Echo:"]


@dataclass(frozen=True)
class _Plan:
    words: list[str]
    delay: float  # seconds before each token
    fail_after: int | None
    max_tokens: int | None


def _plan(target: ModelTarget, request: ChatRequest) -> _Plan:
    options = target.provider.options
    fail = str(options.get("fail") or "")
    when, _, arg = fail.partition(":")
    if when == "before":
        if arg == "timeout":
            raise ProviderError("mock: upstream timed out", status_code=None, retryable=True)
        status = int(arg or 500)
        raise ProviderError(
            f"mock: upstream answered {status}", status_code=status, retryable=is_retryable_status(status)
        )
    fail_after = int(arg or 0) if when == "after" else None
    return _Plan(
        words=reply_words(request, options),
        delay=float(options.get("latency_ms") or 0) / 1000,
        fail_after=fail_after,
        max_tokens=request.max_tokens,
    )


def _broken(emitted: int) -> ProviderError:
    return ProviderError(f"mock: stream broke after {emitted} tokens", status_code=None, retryable=True)


def _end(target: ModelTarget, request: ChatRequest, emitted: int, finish_reason: str) -> StreamEnd:
    usage = Usage(
        input_tokens=count_message_tokens(target.upstream_model, request.messages),
        output_tokens=emitted,
    )
    return StreamEnd(usage=usage, finish_reason=finish_reason)


async def chat_stream(
    target: ModelTarget,
    request: ChatRequest,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[StreamEvent, None]:
    plan = _plan(target, request)
    emitted = 0
    finish_reason = "stop"
    for word in plan.words:
        if plan.max_tokens is not None and emitted >= plan.max_tokens:
            finish_reason = "length"
            break
        if plan.fail_after is not None and emitted >= plan.fail_after:
            raise _broken(emitted)
        # Always yield to the event loop, even without latency, so a mock stream never starves
        # other tasks.
        await sleep(plan.delay)
        yield TextDelta(word if emitted == 0 else " " + word)
        emitted += 1
    # Off the event loop: the first count imports litellm (seconds).
    yield await asyncio.to_thread(_end, target, request, emitted, finish_reason)


# ------------------------------------------------------------------------------------ embeddings

MOCK_DIMENSIONS = 256


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text (same text, same vector)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [(byte - 127.5) / 127.5 for byte in digest]
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


async def aembed(target: ModelTarget, inputs: list[str], *, dimensions: int | None = None) -> EmbeddingResult:
    options = target.provider.options
    fail = str(options.get("fail") or "")
    if fail.startswith("before:"):
        _plan(target, ChatRequest(messages=[]))  # raises the configured failure
    size = dimensions or int(options.get("dimensions") or MOCK_DIMENSIONS)
    tokens = await asyncio.to_thread(lambda: sum(count_tokens(target.upstream_model, text) for text in inputs))
    return EmbeddingResult(vectors=[_vector(text, size) for text in inputs], input_tokens=tokens)

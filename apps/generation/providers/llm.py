"""litellm-backed providers: OpenAI, Anthropic, Gemini, Mistral, Ollama, any OpenAI-compatible API.

litellm speaks the wire protocols; this module maps our `ModelTarget` to litellm's arguments,
turns its stream into `TextDelta`s and one `StreamEnd`, and its exceptions into `ProviderError`.

Base URLs (`ProviderConfig.base_url`) are passed to litellm as `api_base`, unchanged except for a
trailing slash:

- OpenAI, OpenAI-compatible, Mistral: the API root *including* the version, e.g.
  `https://api.openai.com/v1`, `http://vllm:8000/v1`; litellm appends `/chat/completions`
  (as the OpenAI SDK does). Mistral's adapter adds a missing `/v1` itself.
- Anthropic: the host root, e.g. `https://api.anthropic.com`; litellm appends `/v1/messages`.
- Gemini: the API root with its version, e.g. `https://generativelanguage.googleapis.com/v1beta`;
  litellm appends `/models/<model>:streamGenerateContent`.
- Ollama: the server root, e.g. `http://localhost:11434`; litellm appends `/api/chat`.

An empty base URL means the provider's public endpoint (Ollama: litellm's localhost default);
OpenAI-compatible endpoints require one.

litellm's own retries are off (`num_retries=0`): the router does failover across the chain, and a
retry inside one attempt would hide failures from the circuit breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from decimal import Decimal
from typing import Any

from apps.generation.providers.base import (
    CHAT_OPTIONS,
    ChatRequest,
    EmbeddingResult,
    ModelTarget,
    ProviderError,
    ProviderKind,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    is_retryable_status,
)
from apps.generation.tokens import count_message_tokens, count_tokens, load_litellm

# Our provider kind -> litellm's provider prefix. `ollama_chat` (Ollama's /api/chat) keeps the
# roles of a conversation; `ollama` would flatten it into one prompt for /api/generate.
LITELLM_PREFIX = {
    ProviderKind.OPENAI: "openai",
    ProviderKind.OPENAI_COMPATIBLE: "openai",
    ProviderKind.ANTHROPIC: "anthropic",
    ProviderKind.GEMINI: "gemini",
    ProviderKind.MISTRAL: "mistral",
    ProviderKind.OLLAMA: "ollama_chat",
}

# Provider names for litellm's cost map lookup. OpenAI-compatible endpoints serve anything at any
# price, so they have no known cost.
_COST_PROVIDER = {
    ProviderKind.OPENAI: "openai",
    ProviderKind.ANTHROPIC: "anthropic",
    ProviderKind.GEMINI: "gemini",
    ProviderKind.MISTRAL: "mistral",
    ProviderKind.OLLAMA: "ollama",
}

_MAX_ERROR_TEXT = 500


def litellm_model(target: ModelTarget) -> str:
    try:
        prefix = LITELLM_PREFIX[target.provider.kind]
    except KeyError:
        raise ProviderError(f"unknown provider kind {target.provider.kind!r}", retryable=False) from None
    return f"{prefix}/{target.upstream_model}"


def litellm_connection(target: ModelTarget) -> dict[str, Any]:
    """How litellm reaches the provider of `target`: its timeout, key and base URL (for every
    kind of call). An OpenAI-compatible provider without a base URL is refused."""
    provider = target.provider
    base_url = provider.base_url.rstrip("/")
    if provider.kind == ProviderKind.OPENAI_COMPATIBLE and not base_url:
        raise ProviderError("an OpenAI-compatible provider needs a base URL", retryable=False)
    kwargs: dict[str, Any] = {"timeout": provider.timeout}
    if provider.api_key:
        kwargs["api_key"] = provider.api_key
    elif provider.kind == ProviderKind.OPENAI_COMPATIBLE:
        # Self-hosted servers often need no key, but the OpenAI client refuses to start without
        # one — and would otherwise send OPENAI_API_KEY from our environment to a third party.
        kwargs["api_key"] = "none"
    if base_url:
        kwargs["api_base"] = base_url
    return kwargs


def completion_kwargs(target: ModelTarget, request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of `litellm.acompletion` for one streaming attempt."""
    kwargs: dict[str, Any] = {
        **litellm_connection(target),
        "model": litellm_model(target),
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "num_retries": 0,
        # Parameters a model does not accept (e.g. temperature on reasoning models) are dropped
        # instead of failing the request.
        "drop_params": True,
    }
    for name in ("temperature", "max_tokens", *CHAT_OPTIONS):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    if request.tools:
        # Tools are the caller's functions, passed through: litellm would otherwise look for
        # MCP-gateway tools first, which needs the optional `mcp` package.
        kwargs["_skip_mcp_handler"] = True
    return kwargs


# ---------------------------------------------------------------------------------------- errors


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError, asyncio.TimeoutError]
    with contextlib.suppress(ImportError):
        import httpx

        errors.append(httpx.TransportError)
    with contextlib.suppress(ImportError):
        import aiohttp

        errors.append(aiohttp.ClientError)
    return tuple(errors)


def to_provider_error(exc: Exception) -> ProviderError:
    """Classify an exception from litellm (or the transport under it) for failover and breakers.

    Retryable: rate limits, time-outs, connection failures, 5xx, and a stream broken mid-way
    (litellm's MidStreamFallbackError is a ServiceUnavailableError). Not retryable: the other
    4xx — bad key, unknown model, bad request — which another attempt at the same upstream will
    not fix, and anything unrecognised (more likely our bug than the upstream's health).
    """
    if isinstance(exc, ProviderError):
        return exc
    litellm = load_litellm()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT]
    if isinstance(
        exc,
        litellm.RateLimitError
        | litellm.Timeout
        | litellm.APIConnectionError
        | litellm.InternalServerError
        | litellm.ServiceUnavailableError
        | litellm.BadGatewayError,
    ):
        return ProviderError(message, status_code=status, retryable=True)
    if isinstance(
        exc,
        litellm.AuthenticationError
        | litellm.PermissionDeniedError
        | litellm.NotFoundError
        | litellm.BadRequestError
        | litellm.UnprocessableEntityError,
    ):
        return ProviderError(message, status_code=status, retryable=False)
    if status is not None:
        return ProviderError(message, status_code=status, retryable=is_retryable_status(status))
    if isinstance(exc, _transport_errors()):
        return ProviderError(message, retryable=True)
    return ProviderError(message, retryable=False)


# ------------------------------------------------------------------------------------- streaming


class _StreamState:
    """What one attempt has delivered so far, to build the closing `StreamEnd`."""

    def __init__(self, target: ModelTarget, request: ChatRequest) -> None:
        self.target = target
        self.request = request
        self.text: list[str] = []
        self.usage: Any = None
        self.finish_reason: str | None = None

    def take(self, chunk: Any) -> list[TextDelta | ToolCallDelta]:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        choices = getattr(chunk, "choices", None) or []
        if not choices:
            return []
        choice = choices[0]
        if getattr(choice, "finish_reason", None):
            self.finish_reason = choice.finish_reason
        delta = getattr(choice, "delta", None)
        events: list[TextDelta | ToolCallDelta] = []
        content = getattr(delta, "content", None)
        if content:
            self.text.append(content)
            events.append(TextDelta(content))
        for call in getattr(delta, "tool_calls", None) or []:
            function = getattr(call, "function", None)
            arguments = getattr(function, "arguments", None) or ""
            self.text.append(arguments)
            events.append(
                ToolCallDelta(
                    index=int(getattr(call, "index", 0) or 0),
                    id=getattr(call, "id", None) or None,
                    name=getattr(function, "name", None) or None,
                    arguments=arguments,
                )
            )
        return events

    def end(self, response: Any) -> StreamEnd:
        if self.usage is not None and _provider_reported_usage(response):
            details = getattr(self.usage, "prompt_tokens_details", None)
            usage = Usage(
                input_tokens=int(self.usage.prompt_tokens or 0),
                output_tokens=int(self.usage.completion_tokens or 0),
                cached_input_tokens=int(getattr(details, "cached_tokens", None) or 0),
            )
        else:
            model = self.target.upstream_model
            usage = Usage(
                input_tokens=count_message_tokens(model, self.request.messages),
                output_tokens=count_tokens(model, "".join(self.text)),
                reported=False,
            )
        return StreamEnd(usage=usage, finish_reason=self.finish_reason)


def _provider_reported_usage(response: Any) -> bool:
    """Whether the upstream itself sent usage numbers.

    With `include_usage`, litellm always ends the stream with a usage chunk — counted with its
    tokenizer when the upstream sent none. Its stream wrapper keeps the chunks it received; a
    usage among them came from the upstream. If a future litellm drops that attribute, the final
    usage is trusted as reported.
    """
    chunks = getattr(response, "chunks", None)
    if chunks is None:
        return True
    return any(getattr(chunk, "usage", None) is not None for chunk in chunks)


def _timed_out(timeout: float) -> ProviderError:
    return ProviderError(f"Timeout: no data from the upstream for {timeout:g} s", status_code=408, retryable=True)


async def chat_stream(target: ModelTarget, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
    """Stream one attempt: `TextDelta`s / `ToolCallDelta`s, then one `StreamEnd`; failures
    raise `ProviderError`. The provider's `timeout` bounds the wait for the response (first
    token) and every wait for the next chunk (an upstream that goes quiet mid-answer)."""
    kwargs = completion_kwargs(target, request)
    # The first call imports litellm (seconds): keep it off the event loop.
    litellm = await asyncio.to_thread(load_litellm)
    state = _StreamState(target, request)
    # Our own deadline on every wait for the upstream, on top of litellm's `timeout`, which not
    # every adapter applies to streams (Gemini's does not).
    timeout = target.provider.timeout
    try:
        async with asyncio.timeout(timeout):
            response = await litellm.acompletion(**kwargs)
    except TimeoutError as exc:
        raise _timed_out(timeout) from exc
    except Exception as exc:
        raise to_provider_error(exc) from exc
    try:
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await response.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                raise _timed_out(timeout) from exc
            except Exception as exc:
                raise to_provider_error(exc) from exc
            for event in state.take(chunk):
                yield event
    finally:
        # Releases the upstream connection of an abandoned stream (stop button, client gone).
        aclose = getattr(response, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    # Counting, when the upstream reported no usage, may load a tokenizer: off the loop too.
    yield await asyncio.to_thread(state.end, response)


# ------------------------------------------------------------------------------------ embeddings


async def aembed(target: ModelTarget, inputs: list[str], *, dimensions: int | None = None) -> EmbeddingResult:
    """Embed `inputs` with litellm; failures raise `ProviderError` (classified as for chat)."""
    provider = target.provider
    kwargs: dict[str, Any] = {
        **litellm_connection(target),
        "model": litellm_model(target),
        "input": inputs,
        "num_retries": 0,
        "drop_params": True,
    }
    if dimensions is not None:
        kwargs["dimensions"] = dimensions
    litellm = await asyncio.to_thread(load_litellm)
    try:
        async with asyncio.timeout(provider.timeout):
            response = await litellm.aembedding(**kwargs)
    except TimeoutError as exc:
        raise _timed_out(provider.timeout) from exc
    except Exception as exc:
        raise to_provider_error(exc) from exc
    data = sorted(response.data, key=lambda item: item["index"])
    vectors = [[float(x) for x in item["embedding"]] for item in data]
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
    if prompt_tokens:
        return EmbeddingResult(vectors=vectors, input_tokens=int(prompt_tokens))
    counted = sum(count_tokens(target.upstream_model, text) for text in inputs)
    return EmbeddingResult(vectors=vectors, input_tokens=counted, reported=False)


# ------------------------------------------------------------------------------------------ cost


def provider_cost(model: str, usage: Usage, *, kind: str | None = None) -> Decimal | None:
    """What the upstream charges for `usage` of `model`, from litellm's bundled cost map.

    `kind` selects the provider's price list (without it litellm guesses from the model name).
    None when the price is unknown (unmapped model, OpenAI-compatible endpoint); the mock is free.
    """
    if kind == ProviderKind.MOCK:
        return Decimal(0)
    if kind == ProviderKind.OPENAI_COMPATIBLE:
        return None
    litellm = load_litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            custom_llm_provider=_COST_PROVIDER.get(kind) if kind else None,
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            cache_read_input_tokens=usage.cached_input_tokens,
        )
    except Exception:
        return None
    # Floats never touch stored amounts: go through their shortest decimal representation.
    return Decimal(str(prompt_cost)) + Decimal(str(completion_cost))

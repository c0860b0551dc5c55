"""The OpenAI-compatible endpoints under `/v1/`: point any OpenAI client at Aikeedo by changing
its base URL and key; calls are billed in the key's workspace credits.

These are async views: a completion waits on the provider for seconds, and one ASGI process must
carry many of them. Database steps (authentication, model lookup, rate limits, the charging
pipeline's reserve/settle) run through the shared sync thread (`db_step`); provider calls and
streaming stay on the event loop. Every refusal is an `ApiError` in OpenAI's error shape.

    authenticate key → parse + validate body → model (scope, key's allowed models) → rate limit
    → charging pipeline (reserve, with the key's spending cap) → respond → record tokens
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial, wraps
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.api.errors import MAX_BODY_BYTES, ApiError, api_error_for, body_too_large, unexpected_error
from apps.api.parsers import TOO_DEEP_CODE, TOO_DEEP_MESSAGE, json_too_deep
from apps.api.serializers import (
    ChatCompletionRequestSerializer,
    EmbeddingsRequestSerializer,
    first_error,
)
from apps.apikeys.exceptions import ApiKeyCapReached
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.selectors import apikey_still_valid
from apps.apikeys.services import apikey_authenticate, apikey_check_model, apikey_check_scope, apikey_reserve
from apps.core.middleware import client_ip
from apps.credits.amounts import to_credits
from apps.credits.models import Reservation
from apps.credits.selectors import credits_balance
from apps.generation.exceptions import AccessRevoked, GenerationRefused
from apps.generation.models import AIModel, Capability, Generation, Unusable
from apps.generation.providers.base import TextDelta, ToolCallDelta
from apps.generation.services import (
    ChatGeneration,
    GenerationEnd,
    db_step,
    generation_aembed,
    generation_chat_stream,
)
from apps.generation.tokens import count_message_tokens
from apps.ratelimits.decisions import RateLimitDecision
from apps.ratelimits.services import ratelimit_enforce, ratelimit_record_tokens
from apps.workspaces.selectors import workspace_plan_code

logger = logging.getLogger(__name__)

CACHE_HEADER = "X-Aikeedo-Cache"  # "true" / "false": use the response cache for this request
CHARGED_HEADER = "X-Aikeedo-Credits-Charged"
REMAINING_HEADER = "X-Aikeedo-Credits-Remaining"

_R = TypeVar("_R", bound=HttpResponseBase)
View = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def openai_view(methods: tuple[str, ...]) -> Callable[[View], View]:
    """CSRF-exempt (bearer-key API), method check, and every error in OpenAI's shape: our
    refusals and Django's request errors as 4xx, anything unexpected as a logged 500."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise ApiError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed")
                return await view(request, *args, **kwargs)
            except Exception as exc:
                error = api_error_for(exc)
                if error is None:
                    error = unexpected_error(request, exc)
                return error.response()

        return wrapper

    return decorate


# ---------------------------------------------------------------------------- request steps


def key_from_request(request: HttpRequest) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
            code="missing_api_key",
        )
    return apikey_authenticate(raw_key=token.strip(), ip=client_ip(request))


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object of the body: at most MAX_BODY_BYTES (413), nested at most MAX_JSON_DEPTH
    levels (checked before parsing), in UTF-8 (or UTF-16/32, as `json.loads` takes bytes)."""
    raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise body_too_large(MAX_BODY_BYTES)
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") if raw else "null"
        if json_too_deep(text):
            raise ApiError(400, TOO_DEEP_MESSAGE, code=TOO_DEEP_CODE)
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return data


def _validated(serializer_class: type, data: dict[str, Any]) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        code = "missing_required_parameter" if "required" in message else "invalid_value"
        raise ApiError(400, f"{param}: {message}" if param else message, param=param or None, code=code)
    return dict(serializer.validated_data)


def model_for_key(key: ApiKey, model_id: str, *, capability: Capability, what: str | None = None) -> AIModel:
    """The catalog model the key may use for `capability`: 404 when it does not exist or is
    off, the key's model allowlist (403), 400 when it does not do `capability` (`what` names
    it in the message). A model the plan excludes is left to the pipeline or the job, which
    refuse it (403) and log the refusal like every other."""
    model = AIModel.objects.select_related("provider").filter(model_id=model_id).first()
    reason = None if model is None else model.unusable_reason(capability, plan_code=workspace_plan_code(key.workspace))
    if model is None or reason == Unusable.DISABLED:
        raise ApiError(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    apikey_check_model(key=key, model_id=model_id)
    if reason == Unusable.UNSUPPORTED:
        raise ApiError(
            400,
            f"The model `{model_id}` does not support {what or capability}.",
            param="model",
            code="model_not_supported",
        )
    return model


def key_reserve(key: ApiKey, **kwargs: Any) -> Reservation:
    """Hold credits through the key: its spending cap is checked under its row lock."""
    kwargs.pop("workspace", None)
    try:
        return apikey_reserve(key=key, **kwargs)
    except ApiKeyCapReached as exc:
        raise GenerationRefused(exc.message, status_code=429, code=exc.code) from exc


def _prepare_chat(request: HttpRequest) -> tuple[ApiKey, AIModel, dict[str, Any], RateLimitDecision, int]:
    """Everything before the provider call: key, body, model, rate limit."""
    key = key_from_request(request)
    apikey_check_scope(key=key, scope=Scope.CHAT)
    data = _validated(ChatCompletionRequestSerializer, json_body(request))
    model = model_for_key(key, data["model"], capability=Capability.CHAT)
    if data.get("tools") and not model.supports_tools:
        raise ApiError(
            400, f"The model `{model.model_id}` does not support tools.", param="tools", code="invalid_value"
        )
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if max_tokens is not None and max_tokens > model.max_output_tokens:
        raise ApiError(
            400,
            f"max_tokens is too large: {max_tokens}. This model supports at most {model.max_output_tokens} "
            "completion tokens.",
            param="max_tokens",
            code="invalid_value",
        )
    input_tokens = count_message_tokens(model.upstream_model, data["messages"])
    if input_tokens + (max_tokens or 0) > model.context_window:
        raise ApiError(
            400,
            f"This model's maximum context length is {model.context_window} tokens; the messages use "
            f"{input_tokens} tokens.",
            param="messages",
            code="context_length_exceeded",
        )
    decision = ratelimit_enforce(workspace=key.workspace, api_key=key, tokens=input_tokens)
    return key, model, data, decision, input_tokens


def _options(data: dict[str, Any]) -> dict[str, Any]:
    options = {name: data[name] for name in ("top_p", "stop", "tools", "tool_choice", "seed") if name in data}
    for name in ("presence_penalty", "frequency_penalty"):
        if name in data:
            options[name] = data[name]
    if "response_format" in data:
        options["response_format"] = dict(data["response_format"])
    if "tools" in options:
        options["tools"] = [
            {"type": "function", "function": {k: v for k, v in dict(tool["function"]).items()}}
            for tool in options["tools"]
        ]
    return options


def _cache_choice(request: HttpRequest) -> bool | None:
    value = request.headers.get(CACHE_HEADER, "").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    return None


def _after(key: ApiKey, end: GenerationEnd | None, input_tokens: int) -> str:
    """Record the output tokens on the rate-limit windows; the credits left, for the header."""
    if end is not None:
        ratelimit_record_tokens(
            workspace=key.workspace, api_key=key, tokens=end.usage.output_tokens + end.usage.input_tokens - input_tokens
        )
    return credits_remaining(key)


def credits_remaining(key: ApiKey) -> str:
    return str(to_credits(credits_balance(workspace=key.workspace).available_units))


def _usage_json(end: GenerationEnd) -> dict[str, Any]:
    usage = end.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def _headers(response: _R, decision: RateLimitDecision) -> _R:
    for name, value in decision.headers().items():
        response[name] = value
    return response


class _ToolCalls:
    """Assembles streamed tool-call fragments into OpenAI's `tool_calls` list."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self.calls.setdefault(
            delta.index, {"id": delta.id or "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if delta.id:
            call["id"] = delta.id
        if delta.name:
            call["function"]["name"] = delta.name
        call["function"]["arguments"] += delta.arguments

    def as_list(self) -> list[dict[str, Any]]:
        return [self.calls[index] for index in sorted(self.calls)]


def _chunk_delta(delta: TextDelta | ToolCallDelta, first: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"} if first else {}
    if isinstance(delta, TextDelta):
        out["content"] = delta.text
    else:
        call: dict[str, Any] = {"index": delta.index}
        if delta.id:
            call["id"] = delta.id
            call["type"] = "function"
        function: dict[str, Any] = {"arguments": delta.arguments}
        if delta.name:
            function["name"] = delta.name
        call["function"] = function
        out["tool_calls"] = [call]
    return out


# ---------------------------------------------------------------------------- endpoints


def _model_json(model: AIModel) -> dict[str, Any]:
    return {
        "id": model.model_id,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.provider.kind,
    }


def _models_for(request: HttpRequest) -> list[dict[str, Any]]:
    key = key_from_request(request)
    models = AIModel.objects.order_by("position", "model_id").usable_for(key.workspace, None)
    return [_model_json(m) for m in models if key.allows_model(m.model_id)]


@openai_view(("GET",))
async def models_list(request: HttpRequest) -> HttpResponse:
    data = await db_step(_models_for, request)
    return JsonResponse({"object": "list", "data": data})


@openai_view(("GET",))
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    data = await db_step(_models_for, request)
    for model in data:
        if model["id"] == model_id:
            return JsonResponse(model)
    raise ApiError(
        404, f"The model `{model_id}` does not exist or you do not have access to it.", code="model_not_found"
    )


@openai_view(("POST",))
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    key, model, data, decision, input_tokens = await db_step(_prepare_chat, request)
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    stream = generation_chat_stream(
        workspace=key.workspace,
        user=None,
        api_key=key,
        reserve=partial(key_reserve, key),
        model=model,
        messages=data["messages"],
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=data.get("temperature"),
        options=_options(data),
        idempotency_key=f"api:{key.pk}:{request_id}",
        cache=_cache_choice(request),
        # Re-checked while the answer streams: a key revoked (or its workspace deleted, its
        # creator suspended) mid-answer ends it, charged for what was delivered.
        access_check=partial(apikey_still_valid, key.pk),
    )
    # Whatever stops this request early (the client went away, the server cancelled it) is a
    # client that is gone: the delivered part is charged, nothing more.
    stream.close_outcome = Generation.Outcome.CLIENT_GONE
    completion_id = f"chatcmpl-{request_id}"
    created = int(time.time())
    if data.get("stream"):
        return await _stream_response(
            stream, key, model, data, decision, input_tokens, completion_id=completion_id, created=created
        )
    text: list[str] = []
    tools = _ToolCalls()
    end: GenerationEnd | None = None
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                tools.add(event)
            else:
                end = event
    finally:
        await stream.aclose(Generation.Outcome.CLIENT_GONE)
    assert end is not None
    remaining = await db_step(_after, key, end, input_tokens)
    if end.outcome != Generation.Outcome.OK:
        # A provider error after the first token: the part delivered to us is charged.
        raise ApiError(503, "The model stopped answering midway; please retry.", code="upstream_error")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tools.calls else None}
    if tools.calls:
        message["tool_calls"] = tools.as_list()
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": end.finish_reason or "stop"}],
        "usage": _usage_json(end),
        "system_fingerprint": None,
    }
    response = JsonResponse(body)
    response[CHARGED_HEADER] = str(to_credits(end.credits_units))
    response[REMAINING_HEADER] = remaining
    return _headers(response, decision)


async def _stream_response(
    stream: ChatGeneration,
    key: ApiKey,
    model: AIModel,
    data: dict[str, Any],
    decision: RateLimitDecision,
    input_tokens: int,
    *,
    completion_id: str,
    created: int,
) -> StreamingHttpResponse:
    """Server-sent events in OpenAI's chunk format. The first event is awaited before the
    response starts, so refusals and "every provider is down" are still HTTP errors."""
    try:
        first = await stream.__anext__()
    except BaseException:
        await stream.aclose(Generation.Outcome.CLIENT_GONE)
        raise
    include_usage = bool((data.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        end: GenerationEnd | None = None
        sent_role = False
        try:
            event: Any = first
            while True:
                if isinstance(event, GenerationEnd):
                    end = event
                    break
                yield chunk(_chunk_delta(event, first=not sent_role))
                sent_role = True
                event = await stream.__anext__()
        except StopAsyncIteration:
            pass
        except AccessRevoked as exc:  # settled for what was delivered
            revoked = ApiError(403, "This API key can no longer be used; the answer was stopped.", code=exc.code)
            yield b"data: " + json.dumps(revoked.payload()).encode() + b"\n\n"
            return
        finally:
            await stream.aclose(Generation.Outcome.CLIENT_GONE)
        if end is None:
            return
        remaining = await db_step(_after, key, end, input_tokens)
        if end.outcome != Generation.Outcome.OK:
            error = ApiError(503, "The model stopped answering midway; please retry.", code="upstream_error")
            yield b"data: " + json.dumps(error.payload()).encode() + b"\n\n"
            return
        if not sent_role:
            yield chunk({"role": "assistant", "content": ""})
        yield chunk({}, finish=end.finish_reason or "stop")
        if include_usage:
            usage_chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model.model_id,
                "choices": [],
                "usage": _usage_json(end),
            }
            yield b"data: " + json.dumps(usage_chunk, separators=(",", ":")).encode() + b"\n\n"
        # An SSE comment (ignored by clients): what the stream cost, since headers went first.
        yield f": credits_charged={to_credits(end.credits_units)} credits_remaining={remaining}\n\n".encode()
        yield b"data: [DONE]\n\n"

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return _headers(response, decision)


def _prepare_embeddings(request: HttpRequest) -> tuple[ApiKey, AIModel, dict[str, Any], RateLimitDecision]:
    key = key_from_request(request)
    apikey_check_scope(key=key, scope=Scope.EMBEDDINGS)
    data = _validated(EmbeddingsRequestSerializer, json_body(request))
    model = model_for_key(key, data["model"], capability=Capability.EMBEDDINGS)
    estimate = sum(len(text) for text in data["input"]) // 4 + 1
    decision = ratelimit_enforce(workspace=key.workspace, api_key=key, tokens=estimate)
    return key, model, data, decision


@openai_view(("POST",))
async def embeddings(request: HttpRequest) -> HttpResponse:
    key, model, data, decision = await db_step(_prepare_embeddings, request)
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    result = await generation_aembed(
        workspace=key.workspace,
        user=None,
        api_key=key,
        reserve=partial(key_reserve, key),
        model=model,
        inputs=data["input"],
        dimensions=data.get("dimensions"),
        idempotency_key=f"api:{key.pk}:{request_id}",
    )
    remaining = await db_step(credits_remaining, key)
    if data.get("encoding_format") == "base64":
        import base64
        import struct

        vectors: list[Any] = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in result.vectors]
    else:
        vectors = result.vectors
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model.model_id,
        "usage": {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens},
    }
    response = JsonResponse(body)
    response[CHARGED_HEADER] = str(to_credits(result.credits_units))
    response[REMAINING_HEADER] = remaining
    return _headers(response, decision)


@openai_view(("GET", "POST", "PUT", "PATCH", "DELETE"))
async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise ApiError(404, f"Unknown endpoint: {request.method} {request.path}", code="unknown_url")

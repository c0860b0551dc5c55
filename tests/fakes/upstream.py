"""A local fake AI provider that speaks the HTTP wire formats of OpenAI (`/v1/chat/completions`,
also at `/chat/completions`), Anthropic (`/v1/messages`), Gemini
(`/v1beta/models/<model>:streamGenerateContent`) and Ollama (`/api/chat`), so litellm and the
provider SDKs run their real code against it.

Behaviour is driven per request through the model name, e.g.
`fake-fast`, `fake-fail-before:500`, `fake-fail-before:429`, `fake-fail-after:3`,
`fake-slow:0.05` (seconds per token), `fake-hang` (never answers: client time-out),
`fake-no-usage` (no usage in the stream), `fake-cached:5` (5 prompt tokens reported as read from
the provider's prompt cache); parts combine with "+" (`fake-slow:0.01+fail-after:3`); or through
`FakeUpstream.script` for a test's next calls. Every request is recorded.

Run in a background thread with its own event loop on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def reply_words(prompt: str) -> list[str]:
    """Deterministic reply derived from the prompt."""
    words = prompt.split() or ["hello"]
    return ["Echo:", *words[:50]]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _prompt_tokens(messages: list[dict[str, Any]], system: str = "") -> int:
    """Words of the prompt, whether content is a string or a list of parts."""
    text = " ".join([system, *(_text(m.get("content")) for m in messages)])
    return max(1, len(text.split()))


@dataclass
class Behaviour:
    fail_before: int | None = None  # HTTP status to answer with before any token
    fail_after: int | None = None  # tokens sent before the stream breaks
    delay: float = 0.0  # seconds per token
    hang: bool = False
    include_usage: bool = True
    cached_tokens: int = 0  # prompt tokens reported as served from the prompt cache


def _behaviour(model: str) -> Behaviour:
    b = Behaviour()
    for part in model.split("+"):
        name, _, arg = part.partition(":")
        if name.endswith("fail-before"):
            b.fail_before = int(arg or 500)
        elif name.endswith("fail-after"):
            b.fail_after = int(arg or 1)
        elif name.endswith("slow"):
            b.delay = float(arg or 0.01)
        elif name.endswith("hang"):
            b.hang = True
        elif name.endswith("no-usage"):
            b.include_usage = False
        elif name.endswith("cached"):
            b.cached_tokens = int(arg or 1)
    return b


@dataclass
class FakeUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Paths of streams the client closed before the end (a write to its connection failed).
    disconnects: list[str] = field(default_factory=list)
    script: list[Behaviour] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stopping: bool = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        self._stopping = True  # releases handlers parked by `fake-hang`, so cleanup can finish
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        @web.middleware
        async def record_disconnects(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
            except ConnectionResetError:
                self.disconnects.append(request.path)
                raise asyncio.CancelledError from None  # aiohttp drops the connection quietly
            return response

        app = web.Application(middlewares=[record_disconnects])
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/chat/completions", self._openai_chat)
        app.router.add_post("/v1/messages", self._anthropic_messages)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1beta/models/{call}", self._gemini_generate)
        app.router.add_post("/api/chat", self._ollama_chat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]  # the ephemeral port picked for port=0
        self._ready.set()
        self._loop.run_forever()

    def _next(self, model: str) -> Behaviour:
        return self.script.pop(0) if self.script else _behaviour(model)

    async def _hang(self, request: web.Request) -> None:
        """Never answer. Ends, without a response, when the client gives up or `stop()` is called
        (aiohttp does not cancel handlers of closed connections by itself)."""
        while not self._stopping and request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.02)
        raise asyncio.CancelledError  # aiohttp drops the connection quietly

    @staticmethod
    def _break(request: web.Request) -> None:
        """Break the connection mid-stream, as a crashed upstream would."""
        if request.transport is not None:
            request.transport.close()

    # ------------------------------------------------------------------ OpenAI
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-fast", "object": "model"}]})

    async def _openai_embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": [((len(str(t)) + k) % 7) / 7 for k in range(8)]}
            for i, t in enumerate(items)
        ]
        tokens = sum(len(str(t).split()) for t in items)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        model = str(body.get("model", ""))
        behaviour = self._next(model)
        if behaviour.hang:
            await self._hang(request)
        if behaviour.fail_before:
            return web.json_response(
                {"error": {"message": f"fake failure {behaviour.fail_before}", "type": "server_error", "code": None}},
                status=behaviour.fail_before,
            )
        messages = body.get("messages", [])
        words = reply_words(_last_user_text(messages))
        prompt_tokens = _prompt_tokens(messages)
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if not body.get("stream"):
            text = " ".join(words)
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(words),
                        "total_tokens": prompt_tokens + len(words),
                    },
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
            }
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        tools = body.get("tools") or []
        if tools and body.get("tool_choice") != "none":
            # Call the first tool with its first parameter set to the last word of the prompt,
            # the arguments split over two chunks as real upstreams do.
            function = tools[0]["function"]
            parameter = next(iter((function.get("parameters") or {}).get("properties") or {"q": {}}))
            arguments = json.dumps({parameter: (_last_user_text(messages).split() or [""])[-1]})
            half = len(arguments) // 2
            call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function"}
            call["function"] = {"name": function["name"], "arguments": arguments[:half]}
            await response.write(chunk({"tool_calls": [call]}))
            await response.write(chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}))
            await response.write(chunk({}, finish="tool_calls"))
            words = []
            if (body.get("stream_options") or {}).get("include_usage"):
                usage_calls = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 9,
                    "total_tokens": prompt_tokens + 9,
                }
                await response.write(chunk({}, usage=usage_calls))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        for i, word in enumerate(words):
            if behaviour.fail_after is not None and i >= behaviour.fail_after:
                self._break(request)
                return response
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            await response.write(chunk({"content": word if i == 0 else " " + word}))
        await response.write(chunk({}, finish="stop"))
        include = (body.get("stream_options") or {}).get("include_usage")
        if include and behaviour.include_usage:
            usage: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            if behaviour.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": behaviour.cached_tokens}
            await response.write(chunk({}, usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ Anthropic
    async def _anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        model = str(body.get("model", ""))
        behaviour = self._next(model)
        if behaviour.hang:
            await self._hang(request)
        if behaviour.fail_before:
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": f"fake failure {behaviour.fail_before}"}},
                status=behaviour.fail_before,
            )
        messages = body.get("messages", [])
        system = body.get("system") or ""
        if isinstance(system, list):
            system = " ".join(part.get("text", "") for part in system if isinstance(part, dict))
        words = reply_words(_last_user_text(messages))
        input_tokens = _prompt_tokens(messages, str(system))
        mid = f"msg_{uuid.uuid4().hex[:12]}"
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": len(words)},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": max(0, input_tokens - behaviour.cached_tokens),
                        "cache_read_input_tokens": behaviour.cached_tokens,
                        "cache_creation_input_tokens": 0,
                        "output_tokens": 1,
                    },
                },
            },
        )
        await event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        for i, word in enumerate(words):
            if behaviour.fail_after is not None and i >= behaviour.fail_after:
                self._break(request)
                return response
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            await event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word if i == 0 else " " + word},
                },
            )
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ Gemini
    async def _gemini_generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].rpartition(":")
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        behaviour = self._next(model)
        if behaviour.hang:
            await self._hang(request)
        if behaviour.fail_before:
            return web.json_response(
                {"error": {"code": behaviour.fail_before, "message": f"fake failure {behaviour.fail_before}"}},
                status=behaviour.fail_before,
            )
        contents = body.get("contents", [])
        user_text = ""
        for content in reversed(contents):
            if content.get("role") == "user":
                user_text = " ".join(str(part.get("text", "")) for part in content.get("parts", []))
                break
        words = reply_words(user_text)
        prompt_tokens = max(1, len(json.dumps(contents).split()))

        def payload(text: str, count: int, finish: str | None = None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            data: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if behaviour.include_usage:
                data["usageMetadata"] = {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": count,
                    "totalTokenCount": prompt_tokens + count,
                    **({"cachedContentTokenCount": behaviour.cached_tokens} if behaviour.cached_tokens else {}),
                }
            return data

        if method != "streamGenerateContent":
            return web.json_response(payload(" ".join(words), len(words), "STOP"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, word in enumerate(words):
            if behaviour.fail_after is not None and i >= behaviour.fail_after:
                self._break(request)
                return response
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            last = i == len(words) - 1
            data = payload(word if i == 0 else " " + word, i + 1, "STOP" if last else None)
            await response.write(f"data: {json.dumps(data)}\r\n\r\n".encode())
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ Ollama
    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        model = str(body.get("model", ""))
        behaviour = self._next(model)
        if behaviour.hang:
            await self._hang(request)
        if behaviour.fail_before:
            return web.json_response({"error": f"fake failure {behaviour.fail_before}"}, status=behaviour.fail_before)
        messages = body.get("messages", [])
        words = reply_words(_last_user_text(messages))
        created_at = "2026-01-01T00:00:00.000000Z"

        def line(content: str, done: bool = False) -> bytes:
            data: dict[str, Any] = {
                "model": model,
                "created_at": created_at,
                "message": {"role": "assistant", "content": content},
                "done": done,
            }
            if done:
                data["done_reason"] = "stop"
                if behaviour.include_usage:
                    data.update({"prompt_eval_count": _prompt_tokens(messages), "eval_count": len(words)})
            return (json.dumps(data) + "\n").encode()

        if body.get("stream") is False:
            return web.Response(body=line(" ".join(words), done=True), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for i, word in enumerate(words):
            if behaviour.fail_after is not None and i >= behaviour.fail_after:
                self._break(request)
                return response
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            await response.write(line(word if i == 0 else " " + word))
        await response.write(line("", done=True))
        await response.write_eof()
        return response


async def _aiter(items: list[bytes]) -> AsyncIterator[bytes]:  # pragma: no cover - helper for callers
    for item in items:
        yield item

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

Audio: OpenAI's `/v1/audio/speech` and `/v1/audio/transcriptions`, and ElevenLabs'
`/v1/text-to-speech/<voice_id>`, `/v1/voices/add` and `DELETE /v1/voices/<voice_id>` (these check
the `xi-api-key` header: missing or "bad-key" answers 401). Failures on demand as above, through
the model name (ElevenLabs: the `model_id`, the new voice's `name`, or the voice id to delete).
Generated speech lasts 50 ms per character of input (at least 0.5 s), in the requested format.

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

from tests.fakes import audio as audio_files


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


# ---------------------------------------------------------------------------------------- audio

_SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/opus",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}


def speech_seconds(text: str) -> float:
    """How long the fake's speech for `text` lasts."""
    return max(0.5, 0.05 * len(text))


def speech_audio(fmt: str, seconds: float, *, rate: int = 24000) -> bytes:
    if fmt == "mp3":
        return audio_files.mp3_bytes(round(seconds * audio_files.MP3_RATE / audio_files.MP3_SAMPLES_PER_FRAME))
    if fmt == "wav":
        return audio_files.wav_bytes(seconds, rate=rate)
    if fmt == "opus":
        return audio_files.ogg_opus_bytes(seconds)
    if fmt == "flac":
        return audio_files.flac_bytes(seconds, rate=rate, channels=1)
    if fmt == "pcm":  # raw 16-bit little-endian mono samples, no header
        wav = audio_files.wav_bytes(seconds, rate=rate)
        return wav[44:]
    return b"\xff\xf1\x50\x80" + bytes(256)  # ADTS-framed AAC lookalike


async def _form(request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Multipart fields (a repeated name gives a list) and uploaded files."""
    fields: dict[str, Any] = {}
    files: list[dict[str, Any]] = []
    form = await request.post()
    for name in set(form.keys()):
        for value in form.getall(name):
            if isinstance(value, web.FileField):
                content = value.file.read()
                files.append(
                    {"field": name, "filename": value.filename, "content_type": value.content_type, "content": content}
                )
            elif name in fields:
                previous = fields[name]
                fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                fields[name] = value
    return fields, files


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


class _AudioRoutes:
    """Handlers of the audio routes, mixed into `FakeUpstream`."""

    requests: list[dict[str, Any]]
    voices: dict[str, str]

    def _next(self, model: str) -> Behaviour:  # pragma: no cover - provided by FakeUpstream
        raise NotImplementedError

    async def _hang(self, request: web.Request) -> None:  # pragma: no cover - provided by FakeUpstream
        raise NotImplementedError

    async def _fail(self, request: web.Request, model: str) -> web.Response | None:
        behaviour = self._next(model)
        if behaviour.hang:
            await self._hang(request)
        if behaviour.fail_before:
            return web.json_response(
                {"error": {"message": f"fake failure {behaviour.fail_before}", "type": "server_error", "code": None}},
                status=behaviour.fail_before,
            )
        return None

    # ------------------------------------------------------------------ OpenAI
    async def _openai_speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        failure = await self._fail(request, str(body.get("model", "")))
        if failure is not None:
            return failure
        fmt = str(body.get("response_format") or "mp3")
        if fmt not in _SPEECH_CONTENT_TYPES:
            return web.json_response({"error": {"message": f"bad response_format {fmt}"}}, status=400)
        seconds = speech_seconds(str(body.get("input", ""))) / float(body.get("speed") or 1.0)
        return web.Response(body=speech_audio(fmt, seconds), headers={"Content-Type": _SPEECH_CONTENT_TYPES[fmt]})

    async def _openai_transcriptions(self, request: web.Request) -> web.Response:
        fields, files = await _form(request)
        self.requests.append({"path": request.path, "fields": fields, "files": files, "headers": dict(request.headers)})
        failure = await self._fail(request, str(fields.get("model", "")))
        if failure is not None:
            return failure
        if len(files) != 1 or files[0]["field"] != "file":
            return web.json_response({"error": {"message": "expected one file"}}, status=400)
        segments: list[dict[str, Any]] = [
            {"id": 0, "seek": 0, "start": 0.0, "end": 1.2, "text": " Fake transcript"},
            {"id": 1, "seek": 0, "start": 1.2, "end": 2.5, "text": f" of {files[0]['filename']}."},
        ]
        for segment in segments:
            segment.update(
                {"tokens": [], "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}
            )
        text = "".join(str(segment["text"]) for segment in segments).strip()
        fmt = fields.get("response_format") or "json"
        if fmt == "json":
            return web.json_response({"text": text})
        if fmt == "verbose_json":
            language = {"en": "english", "de": "german", "fr": "french"}.get(fields.get("language", "en"), "english")
            return web.json_response(
                {"task": "transcribe", "language": language, "duration": 2.5, "text": text, "segments": segments}
            )
        if fmt == "srt":
            cues = [
                f"{i + 1}\n{_srt_time(s['start'])} --> {_srt_time(s['end'])}\n{str(s['text']).strip()}\n"
                for i, s in enumerate(segments)
            ]
            return web.Response(text="\n".join(cues), content_type="text/plain")
        return web.Response(text=text + "\n", content_type="text/plain")

    # ------------------------------------------------------------------ ElevenLabs
    @staticmethod
    def _unauthorised(request: web.Request) -> web.Response | None:
        if request.headers.get("xi-api-key") in (None, "", "bad-key"):
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        return None

    async def _elevenlabs_tts(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {"path": request.path, "query": dict(request.query), "body": body, "headers": dict(request.headers)}
        )
        denied = self._unauthorised(request)
        if denied is not None:
            return denied
        failure = await self._fail(request, str(body.get("model_id", "")))
        if failure is not None:
            return failure
        output = request.query.get("output_format", "mp3_44100_128")
        codec, _, rest = output.partition("_")
        rate = int(rest.split("_")[0] or 0) if rest else 0
        seconds = speech_seconds(str(body.get("text", "")))
        if codec == "mp3":
            return web.Response(body=speech_audio("mp3", seconds), headers={"Content-Type": "audio/mpeg"})
        if codec == "pcm" and rate:
            return web.Response(body=speech_audio("pcm", seconds, rate=rate), headers={"Content-Type": "audio/pcm"})
        if codec == "opus":
            return web.Response(body=speech_audio("opus", seconds), headers={"Content-Type": "audio/opus"})
        return web.json_response(
            {"detail": {"status": "invalid_output_format", "message": f"unknown output_format {output}"}}, status=400
        )

    async def _elevenlabs_add_voice(self, request: web.Request) -> web.Response:
        fields, files = await _form(request)
        self.requests.append({"path": request.path, "fields": fields, "files": files, "headers": dict(request.headers)})
        denied = self._unauthorised(request)
        if denied is not None:
            return denied
        failure = await self._fail(request, str(fields.get("name", "")))
        if failure is not None:
            return failure
        if not fields.get("name") or not files or any(f["field"] != "files" for f in files):
            return web.json_response({"detail": {"status": "invalid_request", "message": "name and files"}}, status=422)
        voice_id = f"fake-voice-{uuid.uuid4().hex[:10]}"
        self.voices[voice_id] = str(fields["name"])
        return web.json_response({"voice_id": voice_id, "requires_verification": False})

    async def _elevenlabs_delete_voice(self, request: web.Request) -> web.Response:
        voice_id = request.match_info["voice_id"]
        self.requests.append({"path": request.path, "method": request.method, "headers": dict(request.headers)})
        denied = self._unauthorised(request)
        if denied is not None:
            return denied
        if self.voices.pop(voice_id, None) is not None:
            return web.json_response({"status": "ok"})
        failure = await self._fail(request, voice_id)
        if failure is not None:
            return failure
        return web.json_response(
            {"detail": {"status": "voice_not_found", "message": f"A voice with id {voice_id} was not found."}},
            status=404,
        )


@dataclass
class FakeUpstream(_AudioRoutes):
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Paths of streams the client closed before the end (a write to its connection failed).
    disconnects: list[str] = field(default_factory=list)
    script: list[Behaviour] = field(default_factory=list)
    voices: dict[str, str] = field(default_factory=dict)  # ElevenLabs voices added: id -> name
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
        app.router.add_post("/v1/audio/speech", self._openai_speech)
        app.router.add_post("/v1/audio/transcriptions", self._openai_transcriptions)
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._elevenlabs_tts)
        app.router.add_post("/v1/voices/add", self._elevenlabs_add_voice)
        app.router.add_delete("/v1/voices/{voice_id}", self._elevenlabs_delete_voice)
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

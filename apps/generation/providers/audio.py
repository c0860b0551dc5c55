"""Audio through the provider layer: speech synthesis, transcription and voice cloning.

Synchronous functions, for Celery tasks. One dispatch per call on `ProviderConfig.kind`:

- `mock` — offline and deterministic (see `audio_mock`);
- `elevenlabs` — ElevenLabs' HTTP API through httpx (speech, voice cloning). Its base URL is the
  host root (`https://api.elevenlabs.io`, the default; a trailing `/v1` is tolerated);
- anything else — litellm (`speech`, `transcription`), with the model prefix and base-URL rules of
  `llm` (OpenAI: `https://api.openai.com/v1`; litellm appends `/audio/speech`...).

Errors: upstream failures raise `ProviderError` (retryable for 408/409/425/429, 5xx, time-outs and
connection failures; other 4xx not). Audio that is not audio raises `AudioError` (or
`VoiceSampleError`) before any upstream is called. Arguments outside what any provider accepts
(empty text, an unknown format) raise `ValueError`.

Transcription is billed per minute of real audio, so `TranscriptResult.duration_seconds` is always
measured from the file (`apps.core.audio.probe_audio`), never taken from the provider.

litellm and httpx are imported inside the functions that use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from apps.core.audio import AUDIO_CONTENT_TYPES, AudioError, AudioInfo, probe_audio
from apps.generation.providers import audio_mock
from apps.generation.providers.base import (
    ModelTarget,
    ProviderConfig,
    ProviderError,
    ProviderKind,
    is_retryable_status,
)

ELEVENLABS = "elevenlabs"  # the provider kind (not yet in ProviderKind)
ELEVENLABS_DEFAULT_BASE_URL = "https://api.elevenlabs.io"

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav")
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
}
MIN_SPEED, MAX_SPEED = 0.25, 4.0  # OpenAI's range
ELEVENLABS_MIN_SPEED, ELEVENLABS_MAX_SPEED = 0.7, 1.2
# Our format -> ElevenLabs `output_format`. WAV is asked for as raw PCM and wrapped here: PCM
# works on every plan, ElevenLabs' own WAV outputs do not.
ELEVENLABS_OUTPUT_FORMATS = {"mp3": "mp3_44100_128", "opus": "opus_48000_64", "wav": "pcm_24000"}

TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TRANSCRIPT_CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

MAX_VOICE_SAMPLES = 25
MAX_VOICE_SAMPLES_BYTES = 50 * 1024 * 1024
MAX_VOICE_NAME = 100

# The extension upstreams see: OpenAI picks the decoder from the file name, so it must match
# what the content is, whatever the user called the file.
_EXTENSIONS = {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "opus": "ogg", "flac": "flac", "m4a": "m4a", "webm": "webm"}
_MS = Decimal("0.001")
_MAX_ERROR_TEXT = 500


class VoiceSampleError(AudioError):
    """The samples (or name) of a voice to clone are unusable; nothing was sent upstream."""


@dataclass(frozen=True)
class SpeechResult:
    audio: bytes
    content_type: str
    fmt: str  # the format actually produced (the mock always produces "wav")
    duration_seconds: Decimal | None  # None when the output cannot be probed (AAC)
    characters: int  # what speech is billed on


@dataclass(frozen=True)
class Segment:
    start: Decimal
    end: Decimal
    text: str


@dataclass(frozen=True)
class TranscriptResult:
    text: str
    language: str | None  # as the provider names it ("english" from Whisper), else the hint
    duration_seconds: Decimal  # measured from the file: what transcription is billed on
    segments: list[Segment] = field(default_factory=list)  # filled when timestamps were asked for


@dataclass(frozen=True)
class ClonedVoice:
    voice_id: str
    requires_verification: bool = False


# ------------------------------------------------------------------------------------ synthesis


def synthesize_speech(
    target: ModelTarget,
    *,
    text: str,
    voice: str,
    speed: float = 1.0,
    fmt: str = "mp3",
    instructions: str | None = None,
) -> SpeechResult:
    """Speak `text` with `voice`. `instructions` (tone, accent) go to models that take them
    (OpenAI gpt-4o-mini-tts); others ignore them."""
    if not text.strip():
        raise ValueError("There is no text to speak.")
    if fmt not in SPEECH_FORMATS:
        raise ValueError(f"Unknown speech format {fmt!r}; expected one of {', '.join(SPEECH_FORMATS)}.")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}.")
    kind = target.provider.kind
    if kind == ProviderKind.MOCK:
        audio_mock.before_call(target.provider.options)
        audio, duration = audio_mock.speech_wav(text, voice=voice, speed=speed)
        return SpeechResult(audio, "audio/wav", "wav", duration, len(text))
    if kind == ELEVENLABS:
        return _elevenlabs_speech(target, text=text, voice=voice, speed=speed, fmt=fmt)
    return _litellm_speech(target, text=text, voice=voice, speed=speed, fmt=fmt, instructions=instructions)


def _speech_result(audio: bytes, fmt: str, characters: int) -> SpeechResult:
    try:
        info: AudioInfo | None = probe_audio(audio)
    except AudioError:
        info = None  # AAC (ADTS) is not probed; a successful synthesis is not failed over it
    content_type = info.content_type if info else SPEECH_CONTENT_TYPES[fmt]
    return SpeechResult(audio, content_type, fmt, info.duration_seconds if info else None, characters)


def _litellm_speech(
    target: ModelTarget, *, text: str, voice: str, speed: float, fmt: str, instructions: str | None
) -> SpeechResult:
    from apps.generation.providers.llm import litellm_model
    from apps.generation.tokens import load_litellm

    kwargs = _litellm_kwargs(target)
    kwargs.update(model=litellm_model(target), input=text, voice=voice, response_format=fmt, speed=speed)
    if instructions:
        kwargs["instructions"] = instructions
    litellm = load_litellm()
    try:
        response = litellm.speech(**kwargs)
        audio = bytes(response.content)
    except Exception as exc:
        raise _litellm_error(exc, target.provider.timeout) from exc
    if not audio:
        raise ProviderError("The provider returned no audio.", retryable=True)
    return _speech_result(audio, fmt, len(text))


def _elevenlabs_speech(target: ModelTarget, *, text: str, voice: str, speed: float, fmt: str) -> SpeechResult:
    output = ELEVENLABS_OUTPUT_FORMATS.get(fmt)
    if output is None:
        raise ProviderError(f"ElevenLabs does not produce {fmt}.", retryable=False)
    if not ELEVENLABS_MIN_SPEED <= speed <= ELEVENLABS_MAX_SPEED:
        raise ProviderError(
            f"ElevenLabs speed must be between {ELEVENLABS_MIN_SPEED} and {ELEVENLABS_MAX_SPEED}.", retryable=False
        )
    body: dict[str, Any] = {"text": text, "model_id": target.upstream_model}
    if speed != 1.0:
        body["voice_settings"] = {"speed": speed}
    response = _elevenlabs_request(
        target.provider, "POST", f"/v1/text-to-speech/{voice}", params={"output_format": output}, json=body
    )
    audio = response.content
    if not audio:
        raise ProviderError("ElevenLabs returned no audio.", retryable=True)
    if output.startswith("pcm_"):
        audio = _pcm_to_wav(audio, rate=int(output.removeprefix("pcm_")))
    return _speech_result(audio, fmt, len(text))


def _pcm_to_wav(pcm: bytes, *, rate: int) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) // 2 * 2])
    return buffer.getvalue()


# -------------------------------------------------------------------------------- transcription


def transcribe(
    target: ModelTarget,
    *,
    audio: bytes,
    filename: str,
    language: str | None = None,
    timestamps: bool = False,
    prompt: str | None = None,
) -> TranscriptResult:
    """Transcribe `audio`; `language` is an ISO-639-1 hint, `prompt` guides spelling and style.
    With `timestamps`, segments are asked for (`verbose_json`: Whisper models; OpenAI's
    gpt-4o-transcribe models refuse it)."""
    info = probe_audio(audio)  # AudioError for anything that is not audio, before any upstream
    kind = target.provider.kind
    if kind == ProviderKind.MOCK:
        audio_mock.before_call(target.provider.options)
        segments = [Segment(s, e, t) for s, e, t in audio_mock.transcript_segments(info)]
        return TranscriptResult(
            text=" ".join(s.text for s in segments),
            language=language or "en",
            duration_seconds=info.duration_seconds,
            segments=segments if timestamps else [],
        )
    if kind == ELEVENLABS:
        raise ProviderError("Transcription through ElevenLabs is not supported.", retryable=False)
    return _litellm_transcribe(
        target, audio=audio, info=info, filename=filename, language=language, timestamps=timestamps, prompt=prompt
    )


def upstream_filename(filename: str, info: AudioInfo) -> str:
    """`filename` with the extension of what the content is."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem or 'audio'}.{_EXTENSIONS[info.kind]}"


def _litellm_transcribe(
    target: ModelTarget,
    *,
    audio: bytes,
    info: AudioInfo,
    filename: str,
    language: str | None,
    timestamps: bool,
    prompt: str | None,
) -> TranscriptResult:
    from apps.generation.providers.llm import litellm_model
    from apps.generation.tokens import load_litellm

    kwargs = _litellm_kwargs(target)
    kwargs.update(
        model=litellm_model(target),
        file=(upstream_filename(filename, info), audio, info.content_type),
        response_format="verbose_json" if timestamps else "json",
    )
    if timestamps:
        kwargs["timestamp_granularities"] = ["segment"]
    if language:
        kwargs["language"] = language
    if prompt:
        kwargs["prompt"] = prompt
    litellm = load_litellm()
    try:
        response = litellm.transcription(**kwargs)
    except Exception as exc:
        raise _litellm_error(exc, target.provider.timeout) from exc
    segments = [
        Segment(start=_seconds(_get(s, "start")), end=_seconds(_get(s, "end")), text=str(_get(s, "text") or "").strip())
        for s in (getattr(response, "segments", None) or [])
    ]
    return TranscriptResult(
        text=str(getattr(response, "text", "") or "").strip(),
        language=getattr(response, "language", None) or language,
        duration_seconds=info.duration_seconds,
        segments=segments,
    )


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _seconds(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(_MS, rounding=ROUND_HALF_UP)


# ----------------------------------------------------------------------------- transcript output


def transcript_as(result: TranscriptResult, fmt: str) -> str:
    """The transcript in one of OpenAI's response formats: text, json, verbose_json, srt, vtt.
    Without segments, SRT and VTT carry the whole text as one cue over the whole duration."""
    if fmt == "text":
        return result.text + "\n"
    if fmt == "json":
        return json.dumps({"text": result.text}, ensure_ascii=False)
    if fmt == "verbose_json":
        return json.dumps(
            {
                "task": "transcribe",
                "language": result.language or "",
                "duration": float(result.duration_seconds),
                "text": result.text,
                "segments": [
                    {
                        "id": i,
                        "seek": 0,
                        "start": float(s.start),
                        "end": float(s.end),
                        "text": s.text,
                        "tokens": [],
                        "temperature": 0.0,
                        "avg_logprob": 0.0,
                        "compression_ratio": 0.0,
                        "no_speech_prob": 0.0,
                    }
                    for i, s in enumerate(result.segments)
                ],
            },
            ensure_ascii=False,
        )
    if fmt == "srt":
        return "\n".join(
            f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n"
            for i, c in enumerate(_cues(result), start=1)
        )
    if fmt == "vtt":
        cues = "".join(
            f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{_vtt_escape(c.text)}\n\n" for c in _cues(result)
        )
        return "WEBVTT\n\n" + cues
    raise ValueError(f"Unknown transcript format {fmt!r}; expected one of {', '.join(TRANSCRIPT_FORMATS)}.")


def _cues(result: TranscriptResult) -> Iterable[Segment]:
    segments = result.segments or (
        [Segment(Decimal(0), result.duration_seconds, result.text)] if result.text.strip() else []
    )
    for segment in segments:
        text = " ".join(segment.text.split())  # a blank line would end the cue early
        if text:
            yield Segment(segment.start, segment.end, text)


def _timestamp(seconds: Decimal, separator: str) -> str:
    ms = int((seconds * 1000).to_integral_value(rounding=ROUND_HALF_UP))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -------------------------------------------------------------------------------- voice cloning


def clone_voice(
    config: ProviderConfig,
    *,
    name: str,
    samples: list[tuple[str, bytes]],
    description: str = "",
    max_total_bytes: int = MAX_VOICE_SAMPLES_BYTES,
) -> ClonedVoice:
    """Create a voice from `samples` (file name, content). The samples are validated first
    (`VoiceSampleError`: 1 to 25 files, `max_total_bytes` in all, each one audio)."""
    name = name.strip()
    prepared = validate_voice_samples(name=name, samples=samples, max_total_bytes=max_total_bytes)
    if config.kind == ProviderKind.MOCK:
        audio_mock.before_call(config.options)
        return ClonedVoice(voice_id=audio_mock.voice_id(name, samples))
    if config.kind != ELEVENLABS:
        raise ProviderError(f"Provider kind {config.kind!r} cannot clone voices.", retryable=False)
    response = _elevenlabs_request(
        config,
        "POST",
        "/v1/voices/add",
        data={"name": name, "description": description},
        files=[("files", sample) for sample in prepared],
    )
    payload = _json(response)
    voice_id = payload.get("voice_id")
    if not isinstance(voice_id, str) or not voice_id:
        raise ProviderError("ElevenLabs did not return a voice id.", retryable=False)
    return ClonedVoice(voice_id=voice_id, requires_verification=bool(payload.get("requires_verification")))


def delete_voice(config: ProviderConfig, voice_id: str) -> None:
    """Delete a cloned voice at the provider. A voice the provider no longer has counts as
    deleted (404), so a local delete is never blocked by an earlier one."""
    if config.kind == ProviderKind.MOCK:
        audio_mock.before_call(config.options)
        return
    if config.kind != ELEVENLABS:
        raise ProviderError(f"Provider kind {config.kind!r} cannot delete voices.", retryable=False)
    try:
        _elevenlabs_request(config, "DELETE", f"/v1/voices/{voice_id}")
    except ProviderError as exc:
        if exc.status_code != 404:
            raise


def validate_voice_samples(
    *, name: str, samples: list[tuple[str, bytes]], max_total_bytes: int = MAX_VOICE_SAMPLES_BYTES
) -> list[tuple[str, bytes, str]]:
    """Check a cloning request; returns (upstream file name, content, content type) per sample."""
    if not name.strip():
        raise VoiceSampleError("The voice needs a name.")
    if len(name.strip()) > MAX_VOICE_NAME:
        raise VoiceSampleError(f"The voice name is longer than {MAX_VOICE_NAME} characters.")
    if not samples:
        raise VoiceSampleError("Upload at least one audio sample.")
    if len(samples) > MAX_VOICE_SAMPLES:
        raise VoiceSampleError(f"Upload at most {MAX_VOICE_SAMPLES} samples ({len(samples)} given).")
    total = sum(len(content) for _, content in samples)
    if total > max_total_bytes:
        raise VoiceSampleError(
            f"The samples add up to {total / 1048576:.1f} MB; the limit is {max_total_bytes / 1048576:.1f} MB."
        )
    prepared = []
    for filename, content in samples:
        try:
            info = probe_audio(content)
        except AudioError as exc:
            raise VoiceSampleError(f"{filename}: {exc.message}") from exc
        prepared.append((upstream_filename(filename, info), content, AUDIO_CONTENT_TYPES[info.kind]))
    return prepared


# ------------------------------------------------------------------------------ HTTP and errors


def _litellm_kwargs(target: ModelTarget) -> dict[str, Any]:
    from apps.generation.providers.llm import litellm_connection

    # No retries inside one attempt: the task's retries and the breaker see every failure.
    return {**litellm_connection(target), "max_retries": 0}


def _litellm_error(exc: Exception, timeout: float) -> ProviderError:
    """litellm's audio calls raise the OpenAI SDK's exceptions unwrapped: classify its transport
    failures (no status code) here, the rest as for chat."""
    import openai

    from apps.generation.providers.llm import to_provider_error

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"Timeout: no answer from the upstream in {timeout:g} s", status_code=408, retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT], retryable=True)
    return to_provider_error(exc)


def _elevenlabs_base(config: ProviderConfig) -> str:
    base = (config.base_url or ELEVENLABS_DEFAULT_BASE_URL).rstrip("/")
    return base.removesuffix("/v1")


def _elevenlabs_request(config: ProviderConfig, method: str, path: str, **kwargs: Any) -> Any:
    """One call to ElevenLabs; returns the httpx response of a 2xx, raises `ProviderError`."""
    import httpx

    if not config.api_key:
        raise ProviderError("ElevenLabs needs an API key.", retryable=False)
    try:
        with httpx.Client(
            base_url=_elevenlabs_base(config), timeout=config.timeout, headers={"xi-api-key": config.api_key}
        ) as client:
            response = client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderError(
            f"Timeout: no answer from ElevenLabs in {config.timeout:g} s", status_code=408, retryable=True
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderError(f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT], retryable=True) from exc
    if response.status_code >= 400:
        status = response.status_code
        raise ProviderError(
            f"ElevenLabs answered {status}: {_elevenlabs_message(response)}"[:_MAX_ERROR_TEXT],
            status_code=status,
            retryable=is_retryable_status(status),
        )
    return response


def _elevenlabs_message(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return str(response.text)[:200]
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)
    return str(detail)


def _json(response: Any) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise ProviderError("ElevenLabs answered with something other than JSON.", retryable=True) from exc
    return payload if isinstance(payload, dict) else {}

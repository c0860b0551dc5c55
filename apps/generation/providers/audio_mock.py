"""The `mock` provider's audio side: offline, deterministic, free — so demos run without keys.

- Speech: a 16 kHz mono 16-bit PCM WAV lasting 60 ms per character ÷ speed (at least 0.5 s): a
  soft tone while there are letters, silence on whitespace, the pitch picked by the voice. It is
  always WAV, whatever format was asked for, and says so (`fmt="wav"`, `content_type="audio/wav"`).
- Transcription: one segment per second of the audio's real (probed) duration; the first reads
  "[mock transcript of 3.2 s of audio]", the next "[second 2]", "[second 3]"...
- Voice cloning: a voice id derived from the name and the samples' SHA-256; deleting is a no-op.

`ProviderConfig.options` work as for the chat mock: `fail` ("before:500", "before:429",
"before:timeout", any "before:<status>") fails the call, `latency_ms` delays it once.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import time
import wave
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from apps.core.audio import AudioInfo
from apps.generation.providers.base import ProviderError, is_retryable_status

MOCK_SAMPLE_RATE = 16000
MOCK_SECONDS_PER_CHARACTER = 0.06
MOCK_MIN_SECONDS = 0.5
_AMPLITUDE = 3000  # about -21 dBFS: audible, not loud
_PITCHES = (200, 250, 320, 400, 500)  # Hz; each divides the sample rate, so a period is whole
_RUNS = re.compile(r"\s+|\S+")


def before_call(options: dict[str, Any], *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Apply the configured latency and failure of a mock call."""
    latency = float(options.get("latency_ms") or 0) / 1000
    if latency:
        sleep(latency)
    when, _, arg = str(options.get("fail") or "").partition(":")
    if when != "before":
        return
    if arg == "timeout":
        raise ProviderError("mock: upstream timed out", status_code=408, retryable=True)
    status = int(arg or 500)
    raise ProviderError(f"mock: upstream answered {status}", status_code=status, retryable=is_retryable_status(status))


def speech_frames(text: str, speed: float) -> int:
    seconds = max(MOCK_MIN_SECONDS, MOCK_SECONDS_PER_CHARACTER * len(text) / speed)
    return round(seconds * MOCK_SAMPLE_RATE)


def speech_wav(text: str, *, voice: str, speed: float) -> tuple[bytes, Decimal]:
    """The mock's speech for `text` and its exact duration."""
    frames = speech_frames(text, speed)
    pitch = _PITCHES[hashlib.sha256(voice.encode()).digest()[0] % len(_PITCHES)]
    period = MOCK_SAMPLE_RATE // pitch
    cycle = b"".join(
        round(_AMPLITUDE * math.sin(2 * math.pi * i / period)).to_bytes(2, "little", signed=True) for i in range(period)
    )
    # One continuous tone cut at absolute positions: no phase jumps between words.
    tone = cycle * (frames // period + 1)
    per_character = MOCK_SECONDS_PER_CHARACTER * MOCK_SAMPLE_RATE / speed
    pcm = bytearray(frames * 2)
    position = 0
    for run in _RUNS.finditer(text):
        start = round(position * per_character)
        position += len(run.group())
        end = min(round(position * per_character), frames)
        if not run.group().isspace():
            pcm[start * 2 : end * 2] = tone[start * 2 : end * 2]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MOCK_SAMPLE_RATE)
        out.writeframes(bytes(pcm))
    return buffer.getvalue(), Decimal(frames) / Decimal(MOCK_SAMPLE_RATE)


def transcript_segments(info: AudioInfo) -> list[tuple[Decimal, Decimal, str]]:
    """(start, end, text) per second of the audio."""
    duration = info.duration_seconds
    count = max(1, math.ceil(duration))
    segments = []
    for i in range(count):
        start, end = Decimal(i), min(Decimal(i + 1), duration)
        text = f"[mock transcript of {duration.normalize():f} s of audio]" if i == 0 else f"[second {i + 1}]"
        segments.append((start, end, text))
    return segments


def voice_id(name: str, samples: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(name.encode())
    for _, content in samples:
        digest.update(hashlib.sha256(content).digest())
    return f"mock-voice-{digest.hexdigest()[:20]}"

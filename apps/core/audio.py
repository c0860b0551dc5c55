"""Audio probing by content: what an uploaded or generated file really is, and how long it lasts.

The type is decided from the bytes, never from the file name or the client's content type: magic
bytes first (so a renamed text file is refused before any parser runs), then the container is
parsed for its duration, sample rate and channels — `wave` for PCM WAV, mutagen for MP3, Ogg,
FLAC, MP4/M4A (and non-PCM WAV), and a small EBML reader for WebM, which mutagen does not read.

Durations are what transcription is billed on, so they come from the content actually present:
a WAV whose header claims more samples than it carries is measured by its samples, and a WebM
recorded by a browser (no Duration element, unknown sizes) by its last block's timestamp.

The whole file is held in memory: callers enforce their upload size limit before probing.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import IO, Any

from apps.core.errors import DomainError

AUDIO_CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",  # Ogg Opus: the container is what players and browsers look at
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
}
AUDIO_KINDS = tuple(AUDIO_CONTENT_TYPES)
_NAMES = {"wav": "WAV", "mp3": "MP3", "ogg": "Ogg", "opus": "Ogg Opus", "flac": "FLAC", "m4a": "M4A", "webm": "WebM"}

_MS = Decimal("0.001")
_SNIFF_BYTES = 64


class AudioError(DomainError, ValueError):
    """The bytes are not audio we accept: unknown type, corrupt or truncated, or empty. The
    message is meant for the person who uploaded the file."""

    status_code = 400
    code = "invalid_file"


@dataclass(frozen=True)
class AudioInfo:
    kind: str  # one of AUDIO_KINDS
    content_type: str
    duration_seconds: Decimal  # rounded to the millisecond, > 0
    sample_rate: int | None
    channels: int | None


def probe_audio(data: bytes | IO[bytes]) -> AudioInfo:
    """Identify audio by its content and measure it; raises `AudioError` when it is not usable.

    A file-like object is read from its current position to the end, and put back where it was
    when it is seekable (a Django upload can be saved afterwards).
    """
    raw = data if isinstance(data, bytes | bytearray | memoryview) else _read_all(data)
    content = bytes(raw)
    if not content:
        raise AudioError("The file is empty.")
    kind = sniff_audio(content)
    if kind is None:
        raise AudioError("The file is not a supported audio format (WAV, MP3, Ogg/Opus, FLAC, M4A or WebM).")
    try:
        kind, seconds, sample_rate, channels = _MEASURE[kind](content)
    except AudioError:
        raise
    except Exception as exc:  # parsers raise many types (struct.error, EOFError, MutagenError, ...)
        raise AudioError(f"The {_NAMES[kind]} file is corrupt or truncated.") from exc
    if not math.isfinite(seconds) or seconds < 0:
        raise AudioError(f"The {_NAMES[kind]} file is corrupt or truncated.")
    duration = Decimal(repr(seconds)).quantize(_MS, rounding=ROUND_HALF_UP)
    if duration <= 0:
        raise AudioError("The audio has no duration.")
    return AudioInfo(
        kind=kind,
        content_type=AUDIO_CONTENT_TYPES[kind],
        duration_seconds=duration,
        sample_rate=sample_rate or None,
        channels=channels or None,
    )


def _read_all(stream: IO[bytes]) -> bytes:
    start: int | None = None
    try:
        start = stream.tell() if stream.seekable() else None
    except (AttributeError, OSError):
        start = None
    content = stream.read()
    if start is not None:
        stream.seek(start)
    return bytes(content or b"")


# -------------------------------------------------------------------------------------- sniffing


def sniff_audio(content: bytes) -> str | None:
    """The audio kind the leading bytes announce, or None. For Ogg, "opus" or "ogg" by the first
    packet's codec; the parsers confirm it."""
    head = content[:_SNIFF_BYTES]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or _is_mpeg_audio_frame(head):
        return "mp3"
    if head[:4] == b"OggS":
        return "opus" if b"OpusHead" in head else "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio Layer I/II/III frame header (not AAC's ADTS, which has layer 0)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0 and bitrate not in (0, 0b1111) and sample_rate != 0b11


# ------------------------------------------------------------------------------------- measuring

_Measured = tuple[str, float, int, int]  # kind, seconds, sample rate, channels


def _measure_wav(content: bytes) -> _Measured:
    try:
        with wave.open(io.BytesIO(content), "rb") as reader:
            rate, channels, width = reader.getframerate(), reader.getnchannels(), reader.getsampwidth()
            # Count the frames present, not the header's claim (a truncated upload keeps it).
            frames = len(reader.readframes(reader.getnframes())) // (width * channels)
    except wave.Error:
        # Not plain PCM (float, WAVE_FORMAT_EXTENSIBLE, ADPCM...): mutagen reads any fmt chunk.
        return _measure_wav_other(content)
    if rate <= 0:
        raise AudioError("The WAV file has no sample rate.")
    return "wav", frames / rate, rate, channels


def _measure_wav_other(content: bytes) -> _Measured:
    from mutagen.wave import WAVE

    info: Any = WAVE(io.BytesIO(content)).info
    seconds = float(info.length)
    if info.bitrate:
        # The data chunk's declared size may exceed what is there: never more than the bytes.
        seconds = min(seconds, len(content) * 8 / info.bitrate)
    return "wav", seconds, int(info.sample_rate), int(info.channels)


def _measure_mp3(content: bytes) -> _Measured:
    from mutagen.mp3 import MP3

    info: Any = MP3(io.BytesIO(content)).info
    return "mp3", float(info.length), int(info.sample_rate), int(info.channels)


def _measure_ogg(content: bytes) -> _Measured:
    from mutagen import File
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggspeex import OggSpeex
    from mutagen.oggvorbis import OggVorbis

    parsed = File(io.BytesIO(content), options=[OggOpus, OggVorbis, OggFLAC, OggSpeex])
    if parsed is None:
        raise AudioError("The Ogg file is corrupt or holds no Opus, Vorbis, FLAC or Speex audio.")
    info: Any = parsed.info
    if isinstance(parsed, OggOpus):
        return "opus", float(info.length), 48000, int(info.channels)  # Opus always decodes at 48 kHz
    return "ogg", float(info.length), int(getattr(info, "sample_rate", 0)), int(getattr(info, "channels", 0))


def _measure_flac(content: bytes) -> _Measured:
    from mutagen.flac import FLAC

    info: Any = FLAC(io.BytesIO(content)).info
    return "flac", float(info.length), int(info.sample_rate), int(info.channels)


def _measure_m4a(content: bytes) -> _Measured:
    from mutagen.mp4 import MP4

    info: Any = MP4(io.BytesIO(content)).info
    if not info.channels:
        raise AudioError("The MP4 file has no audio track.")
    return "m4a", float(info.length), int(info.sample_rate), int(info.channels)


def _measure_webm(content: bytes) -> _Measured:
    webm = _read_webm(content)
    return "webm", webm.seconds, webm.sample_rate, webm.channels


_MEASURE = {
    "wav": _measure_wav,
    "mp3": _measure_mp3,
    "ogg": _measure_ogg,
    "opus": _measure_ogg,
    "flac": _measure_flac,
    "m4a": _measure_m4a,
    "webm": _measure_webm,
}


# ------------------------------------------------------------------------------------------ WebM

_EBML = 0x1A45DFA3
_DOC_TYPE = 0x4282
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMECODE_SCALE = 0x2AD7B1
_DURATION = 0x4489
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_AUDIO = 0xE1
_SAMPLING_FREQUENCY = 0xB5
_CHANNELS = 0x9F
_CLUSTER = 0x1F43B675
_CLUSTER_TIMECODE = 0xE7
_BLOCK_GROUP = 0xA0
_BLOCK = 0xA1
_SIMPLE_BLOCK = 0xA3
_AUDIO_TRACK = 2

# Elements whose children we read. Walking into them instead of over them makes the reader
# indifferent to "unknown size" masters, which live recordings (MediaRecorder) write.
_WEBM_MASTERS = {_SEGMENT, _INFO, _TRACKS, _TRACK_ENTRY, _AUDIO, _CLUSTER, _BLOCK_GROUP}


@dataclass
class _WebM:
    seconds: float
    sample_rate: int
    channels: int


def _vint(content: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at `pos`: (value, next position, all value bits set)."""
    if pos >= len(content):
        raise AudioError("The WebM file is truncated.")
    first = content[pos]
    length = 8 - first.bit_length() + 1
    if first == 0 or pos + length > len(content):
        raise AudioError("The WebM file is corrupt or truncated.")
    value = int.from_bytes(content[pos : pos + length], "big")
    marker = 1 << (7 * length)
    unknown = value & (marker - 1) == marker - 1
    return (value if keep_marker else value & (marker - 1)), pos + length, unknown


def _read_webm(content: bytes) -> _WebM:
    element_id, pos, _ = _vint(content, 0, keep_marker=True)
    size, pos, _ = _vint(content, pos, keep_marker=False)
    if element_id != _EBML:
        raise AudioError("The WebM file is corrupt.")
    header_end = pos + size
    doc_type = b""
    while pos < header_end:
        child, pos, _ = _vint(content, pos, keep_marker=True)
        length, pos, _ = _vint(content, pos, keep_marker=False)
        if child == _DOC_TYPE:
            doc_type = content[pos : pos + length].rstrip(b"\x00")
        pos += length
    if doc_type != b"webm":
        raise AudioError("Only WebM audio is supported among Matroska files.")

    scale = 1_000_000  # nanoseconds per timecode unit
    duration: float | None = None
    tracks: list[dict[str, float]] = []  # type, sampling frequency, channels (with defaults)
    cluster_time = 0
    last_block = 0
    pos = header_end
    while pos < len(content):
        element_id, pos, _ = _vint(content, pos, keep_marker=True)
        size, pos, unknown = _vint(content, pos, keep_marker=False)
        if element_id in _WEBM_MASTERS:
            if element_id == _TRACK_ENTRY:
                tracks.append({"type": 0, "rate": 8000.0, "channels": 1})
            continue  # read its children next
        if unknown or pos + size > len(content):
            raise AudioError("The WebM file is corrupt or truncated.")
        value = content[pos : pos + size]
        pos += size
        if element_id == _TIMECODE_SCALE:
            scale = int.from_bytes(value, "big") or scale
        elif element_id == _DURATION:
            duration = _ebml_float(value)
        elif element_id == _TRACK_TYPE and tracks:
            tracks[-1]["type"] = int.from_bytes(value, "big")
        elif element_id == _SAMPLING_FREQUENCY and tracks:
            tracks[-1]["rate"] = _ebml_float(value)
        elif element_id == _CHANNELS and tracks:
            tracks[-1]["channels"] = int.from_bytes(value, "big")
        elif element_id == _CLUSTER_TIMECODE:
            cluster_time = int.from_bytes(value, "big")
        elif element_id in (_SIMPLE_BLOCK, _BLOCK):
            _, after_track, _ = _vint(value, 0, keep_marker=False)
            (relative,) = struct.unpack(">h", value[after_track : after_track + 2])
            last_block = max(last_block, cluster_time + relative)
    audio = next((track for track in tracks if track["type"] == _AUDIO_TRACK), None)
    if audio is None:
        raise AudioError("The WebM file has no audio track.")
    # The Duration element when the muxer wrote one; otherwise the last block's start time.
    units = duration if duration else float(last_block)
    return _WebM(seconds=units * scale / 1e9, sample_rate=round(audio["rate"]), channels=int(audio["channels"]))


def _ebml_float(value: bytes) -> float:
    if len(value) == 4:
        return float(struct.unpack(">f", value)[0])
    if len(value) == 8:
        return float(struct.unpack(">d", value)[0])
    if not value:
        return 0.0
    raise AudioError("The WebM file is corrupt.")

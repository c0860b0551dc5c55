"""Probing audio by content: the type from the bytes, the duration from what the file carries.

No encoder is on the machine (no ffmpeg, sox or espeak-ng), so the files are built in the test
(`tests.fakes.audio`): real PCM for WAV, valid container headers and timing for the others.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from decimal import Decimal

import pytest

from apps.core.audio import AudioError, AudioInfo, probe_audio, sniff_audio
from tests.fakes import audio as files


def _float_wav(seconds: float, *, rate: int = 8000, channels: int = 1) -> bytes:
    """IEEE-float WAV (format 3): not PCM, so the stdlib `wave` refuses it and mutagen measures."""
    frames = round(seconds * rate)
    data = struct.pack("<f", 0.1) * frames * channels
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: files.wav_bytes(1.5), AudioInfo("wav", "audio/wav", Decimal("1.500"), 16000, 1)),
        (lambda: files.mp3_bytes(38), AudioInfo("mp3", "audio/mpeg", Decimal("0.993"), 44100, 1)),
        (lambda: files.mp3_bytes(38, id3=True), AudioInfo("mp3", "audio/mpeg", Decimal("0.993"), 44100, 1)),
        (lambda: files.ogg_opus_bytes(2.5), AudioInfo("opus", "audio/ogg", Decimal("2.500"), 48000, 1)),
        (lambda: files.ogg_vorbis_bytes(1.25), AudioInfo("ogg", "audio/ogg", Decimal("1.250"), 22050, 2)),
        (lambda: files.flac_bytes(3.0), AudioInfo("flac", "audio/flac", Decimal("3.000"), 44100, 2)),
        (lambda: files.m4a_bytes(2.0), AudioInfo("m4a", "audio/mp4", Decimal("2.000"), 44100, 2)),
        (lambda: files.webm_bytes(2.345), AudioInfo("webm", "audio/webm", Decimal("2.345"), 48000, 1)),
        (lambda: _float_wav(0.75), AudioInfo("wav", "audio/wav", Decimal("0.750"), 8000, 1)),
    ],
    ids=["wav", "mp3-xing", "mp3-id3", "ogg-opus", "ogg-vorbis", "flac", "m4a", "webm", "wav-float"],
)
def test_identifies_each_type_by_content_and_measures_it(build: Callable[[], bytes], expected: AudioInfo) -> None:
    assert probe_audio(build()) == expected


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "sampwidth", "expected"),
    [
        (1.0, 16000, 1, 2, "1.000"),
        (0.25, 8000, 2, 1, "0.250"),
        (2.0, 44100, 2, 2, "2.000"),
        (61.5, 8000, 1, 2, "61.500"),
    ],
)
def test_wav_duration_is_exact_for_generated_files(
    seconds: float, rate: int, channels: int, sampwidth: int, expected: str
) -> None:
    info = probe_audio(files.wav_bytes(seconds, rate=rate, channels=channels, sampwidth=sampwidth))
    assert info.duration_seconds == Decimal(expected)
    assert (info.sample_rate, info.channels) == (rate, channels)


def test_a_wav_is_measured_by_the_samples_it_carries_not_its_header() -> None:
    # A truncated upload keeps the header's claim of 2 s; only 1 s of samples is there.
    whole = files.wav_bytes(2.0, rate=8000)
    assert probe_audio(whole[: 44 + 8000 * 2]).duration_seconds == Decimal("1.000")


def test_mp3_without_a_xing_header_is_estimated_from_its_bitrate() -> None:
    info = probe_audio(files.mp3_bytes(38, xing=False))
    assert info.kind == "mp3"
    assert abs(info.duration_seconds - Decimal(str(files.mp3_seconds(38)))) < Decimal("0.01")


def test_a_browser_recording_without_duration_is_measured_by_its_last_block() -> None:
    # MediaRecorder writes no Duration and leaves Segment and Cluster sizes unknown.
    info = probe_audio(files.webm_bytes(3.24, with_duration=False))
    assert (info.kind, info.duration_seconds, info.sample_rate) == ("webm", Decimal("3.240"), 48000)


def test_a_file_object_is_read_from_its_position_and_put_back() -> None:
    stream = io.BytesIO(b"junk" + files.wav_bytes(0.5))
    stream.seek(4)
    assert probe_audio(stream).duration_seconds == Decimal("0.500")
    assert stream.tell() == 4


@pytest.mark.parametrize(
    "content",
    [
        b"Dear diary, today I renamed this file to memo.mp3 to see what happens.",
        b"<!doctype html><html><body>not audio</body></html>",
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        b"%PDF-1.7\n" + bytes(64),
        b"\xff\xf1\x50\x80" + bytes(256),  # AAC in ADTS frames: not among the accepted types
    ],
    ids=["text", "html", "png", "pdf", "adts-aac"],
)
def test_refuses_content_that_is_not_a_supported_audio_type(content: bytes) -> None:
    assert sniff_audio(content) is None
    with pytest.raises(AudioError, match="not a supported audio format"):
        probe_audio(content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEgarbage-that-is-not-a-chunk", "WAV file is corrupt"),
        (files.mp3_bytes(5)[:3] + b"ID3" + bytes(5), "MP3 file is corrupt"),
        (b"OggS" + bytes(60), "Ogg file is corrupt"),
        (b"fLaC\x00\x00", "FLAC file is corrupt"),
        (files.m4a_bytes(1.0)[:40], "M4A file is corrupt"),
        (files.webm_bytes(1.0)[:120], "WebM file is corrupt or truncated"),
    ],
    ids=["wav", "mp3", "ogg", "flac", "m4a", "webm"],
)
def test_refuses_corrupt_or_truncated_files(content: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        probe_audio(content)


def test_refuses_an_ogg_stream_that_holds_no_audio_codec() -> None:
    from mutagen.ogg import OggPage

    page = OggPage()
    page.packets = [b"\x80theora" + bytes(40)]
    page.first = True
    with pytest.raises(AudioError, match="holds no Opus, Vorbis"):
        probe_audio(page.write())


def test_refuses_an_mp4_without_an_audio_track() -> None:
    with pytest.raises(AudioError, match="no audio track"):
        probe_audio(files.m4a_bytes(2.0, audio=False))


def test_refuses_matroska_that_is_not_webm() -> None:
    with pytest.raises(AudioError, match="Only WebM"):
        probe_audio(files.webm_bytes(1.0, doc_type="matroska"))


@pytest.mark.parametrize(
    "content",
    [files.wav_bytes(0.0), files.wav_bytes(0.0002, rate=8000), files.ogg_opus_bytes(0.0), files.flac_bytes(0.0)],
    ids=["wav-empty", "wav-under-a-millisecond", "opus", "flac"],
)
def test_refuses_audio_without_duration(content: bytes) -> None:
    with pytest.raises(AudioError, match="no duration"):
        probe_audio(content)


def test_refuses_an_empty_file() -> None:
    with pytest.raises(AudioError, match="empty"):
        probe_audio(b"")

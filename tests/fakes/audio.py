"""Small, real audio files built in memory, for tests that probe or upload audio.

Nothing here encodes sound: the files carry valid container headers and timing (what a prober
reads) around placeholder payloads. WAV is real PCM (a soft tone); MP3 is MPEG-1 Layer III frames
behind a Xing "Info" frame that states the frame count; Ogg (Vorbis, Opus) pages come from
mutagen's own page writer (it computes the CRCs); FLAC is a STREAMINFO block; M4A a minimal
`ftyp`/`moov` tree; WebM an EBML document with an audio track and a cluster of blocks.
"""

from __future__ import annotations

import io
import math
import struct
import wave

# ------------------------------------------------------------------------------------------ WAV


def wav_bytes(seconds: float, *, rate: int = 16000, channels: int = 1, sampwidth: int = 2, tone: int = 440) -> bytes:
    frames = round(seconds * rate)
    amplitude = int((2 ** (8 * sampwidth - 1) - 1) * 0.1)
    period = [int(amplitude * math.sin(2 * math.pi * tone * i / rate)) for i in range(rate // math.gcd(rate, tone))]
    if sampwidth == 1:  # 8-bit WAV is unsigned
        one = bytes((v + 128) & 0xFF for v in period for _ in range(channels))
    else:
        one = b"".join(v.to_bytes(sampwidth, "little", signed=True) * channels for v in period)
    frame_size = sampwidth * channels
    needed = frames * frame_size
    pcm = (one * (needed // len(one) + 1))[:needed]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(sampwidth)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ MP3

MP3_RATE = 44100
MP3_SAMPLES_PER_FRAME = 1152
# MPEG-1 Layer III, no CRC, 128 kbit/s, 44.1 kHz, no padding, mono, original.
_MP3_HEADER = bytes([0xFF, 0xFB, 0x90, 0xC4])
_MP3_FRAME_SIZE = 144 * 128000 // MP3_RATE  # 417 bytes
_MP3_SIDE_INFO = 17  # mono MPEG-1


def mp3_bytes(frames: int, *, xing: bool = True, id3: bool = False) -> bytes:
    """`frames` audio frames (1152 samples each at 44.1 kHz); with `xing`, a leading Info frame
    gives the exact count."""
    body = bytearray()
    if id3:
        body += b"ID3\x04\x00\x00" + bytes([0, 0, 0, 10]) + b"\x00" * 10  # empty 10-byte tag body
    if xing:
        info = _MP3_HEADER + bytes(_MP3_SIDE_INFO) + b"Info" + struct.pack(">II", 1, frames)
        body += info + bytes(_MP3_FRAME_SIZE - len(info))
    frame = _MP3_HEADER + bytes(_MP3_FRAME_SIZE - len(_MP3_HEADER))
    body += frame * frames
    return bytes(body)


def mp3_seconds(frames: int) -> float:
    return frames * MP3_SAMPLES_PER_FRAME / MP3_RATE


# ------------------------------------------------------------------------------------------ Ogg


def _ogg_page(packets: list[bytes], *, sequence: int, granule: int, first: bool = False, last: bool = False) -> bytes:
    from mutagen.ogg import OggPage

    page = OggPage()
    page.packets = packets
    page.sequence = sequence
    page.position = granule
    page.serial = 0x5EED
    page.first = first
    page.last = last
    return bytes(page.write())


def ogg_opus_bytes(seconds: float, *, channels: int = 1, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 48000, 0, 0)
    vendor = b"tests"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    granule = round(seconds * 48000) + pre_skip
    return b"".join(
        [
            _ogg_page([head], sequence=0, granule=0, first=True),
            _ogg_page([tags], sequence=1, granule=0),
            _ogg_page([b"\xfc" + bytes(40)] * 3, sequence=2, granule=granule // 2),
            _ogg_page([b"\xfc" + bytes(40)] * 3, sequence=3, granule=granule, last=True),
        ]
    )


def ogg_vorbis_bytes(seconds: float, *, rate: int = 22050, channels: int = 2) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, channels, rate, 0, 96000, 0, 0xB8, 1)
    vendor = b"tests"
    comment = b"\x03vorbis" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0) + b"\x01"
    setup = b"\x05vorbis" + bytes(32)
    return b"".join(
        [
            _ogg_page([ident], sequence=0, granule=0, first=True),
            _ogg_page([comment, setup], sequence=1, granule=0),
            _ogg_page([bytes(64)] * 2, sequence=2, granule=round(seconds * rate), last=True),
        ]
    )


# ----------------------------------------------------------------------------------------- FLAC


def flac_bytes(seconds: float, *, rate: int = 44100, channels: int = 2, bits: int = 16) -> bytes:
    samples = round(seconds * rate)
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | samples
    streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
    header = bytes([0x80]) + len(streaminfo).to_bytes(3, "big")  # last metadata block, STREAMINFO
    return b"fLaC" + header + streaminfo + b"\xff\xf8" + bytes(30)


# ------------------------------------------------------------------------------------------ M4A


def _atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def m4a_bytes(seconds: float, *, rate: int = 44100, channels: int = 2, audio: bool = True) -> bytes:
    samples = round(seconds * rate)
    ftyp = _atom(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A isommp42")
    mvhd = _atom(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, round(seconds * 1000)) + bytes(80))
    mdhd = _atom(b"mdhd", bytes(4) + struct.pack(">IIII", 0, 0, rate, samples) + bytes(4))
    handler = b"soun" if audio else b"vide"
    hdlr = _atom(b"hdlr", bytes(8) + handler + bytes(12) + b"Handler\x00")
    mp4a = _atom(
        b"mp4a",
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(8)
        + struct.pack(">HHHHI", channels, 16, 0, 0, rate << 16)
        # mutagen expects a child box (a real AAC file has `esds`); a bitrate box will do
        + _atom(b"btrt", struct.pack(">III", 0, 128000, 128000)),
    )
    stsd = _atom(b"stsd", bytes(4) + struct.pack(">I", 1) + mp4a)
    trak = _atom(b"trak", _atom(b"mdia", mdhd + hdlr + _atom(b"minf", _atom(b"stbl", stsd))))
    return ftyp + _atom(b"moov", mvhd + trak) + _atom(b"mdat", bytes(64))


# ----------------------------------------------------------------------------------------- WebM

_UNKNOWN_SIZE = bytes([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])


def _size(n: int) -> bytes:
    for length in range(1, 9):
        if n < 2 ** (7 * length) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(n)


def _el(element_id: int, payload: bytes, *, unknown_size: bool = False) -> bytes:
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return head + (_UNKNOWN_SIZE if unknown_size else _size(len(payload))) + payload


def _uint(element_id: int, value: int) -> bytes:
    return _el(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm_bytes(
    seconds: float,
    *,
    with_duration: bool = True,
    doc_type: str = "webm",
    rate: float = 48000.0,
    channels: int = 1,
    block_ms: int = 20,
) -> bytes:
    """A WebM with one Opus track. Without `with_duration` it looks like a browser MediaRecorder
    file: no Duration element, Segment and Cluster of unknown size, blocks up to `seconds`."""
    ebml = _el(
        0x1A45DFA3,
        _uint(0x4286, 1)
        + _uint(0x42F7, 1)
        + _uint(0x42F2, 4)
        + _uint(0x42F3, 8)
        + _el(0x4282, doc_type.encode())
        + _uint(0x4287, 4)
        + _uint(0x4285, 2),
    )
    info_children = _uint(0x2AD7B1, 1_000_000)
    if with_duration:
        info_children += _el(0x4489, struct.pack(">d", seconds * 1000))
    info = _el(0x1549A966, info_children)
    audio = _el(0xE1, _el(0xB5, struct.pack(">d", rate)) + _uint(0x9F, channels))
    track = _el(0xAE, _uint(0xD7, 1) + _uint(0x83, 2) + _el(0x86, b"A_OPUS") + audio)
    tracks = _el(0x1654AE6B, track)
    # Blocks every `block_ms`, the last one starting at `seconds` (timestamps are block starts);
    # a new cluster every second, as muxers do (block timecodes are 16-bit, relative to it).
    clusters = []
    total_ms = round(seconds * 1000)
    for cluster_start in range(0, total_ms + 1, 1000):
        blocks = b""
        for at in range(cluster_start, min(cluster_start + 1000, total_ms + 1), block_ms):
            blocks += _el(0xA3, bytes([0x81]) + struct.pack(">h", at - cluster_start) + b"\x80" + bytes(8))
        clusters.append(_el(0x1F43B675, _uint(0xE7, cluster_start) + blocks, unknown_size=not with_duration))
    segment = _el(0x18538067, info + tracks + b"".join(clusters), unknown_size=not with_duration)
    return ebml + segment

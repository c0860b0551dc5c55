"""Speech, transcription and voice cloning through the provider layer: the offline mock, litellm
against the fake OpenAI upstream (the real litellm and OpenAI SDK code runs), ElevenLabs' HTTP API
against the fake's ElevenLabs routes."""

from __future__ import annotations

import io
import json
import time
import wave
from decimal import Decimal
from typing import Any

import pytest

from apps.core.audio import AudioError, probe_audio
from apps.generation.providers.audio import (
    ClonedVoice,
    Segment,
    TranscriptResult,
    VoiceSampleError,
    clone_voice,
    delete_voice,
    synthesize_speech,
    transcribe,
    transcript_as,
)
from apps.generation.providers.base import ModelTarget, ProviderConfig, ProviderError, ProviderKind
from tests.fakes import audio as files
from tests.fakes.upstream import FakeUpstream, speech_seconds

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*")

FIFTY = "The quick brown fox jumps over the lazy dog, twice."[:50]


def mock(**options: Any) -> ModelTarget:
    return ModelTarget(ProviderConfig(kind=ProviderKind.MOCK, options=options), "mock-audio")


def openai(upstream: FakeUpstream, model: str, *, timeout: float = 5.0) -> ModelTarget:
    config = ProviderConfig(
        kind=ProviderKind.OPENAI, api_key="sk-test", base_url=upstream.base_url + "/v1", timeout=timeout
    )
    return ModelTarget(config, model)


def eleven_config(upstream: FakeUpstream, *, api_key: str = "xi-test", base: str = "") -> ProviderConfig:
    return ProviderConfig(kind="elevenlabs", api_key=api_key, base_url=upstream.base_url + base, timeout=5.0)


def eleven(upstream: FakeUpstream, model: str = "eleven_multilingual_v2", **kwargs: Any) -> ModelTarget:
    return ModelTarget(eleven_config(upstream, **kwargs), model)


def pcm_frames(wav_bytes: bytes) -> bytes:
    with wave.open(io.BytesIO(wav_bytes)) as reader:
        return reader.readframes(reader.getnframes())


# ------------------------------------------------------------------------------ mock speech


@pytest.mark.parametrize(
    ("text", "speed", "seconds"),
    [
        (FIFTY, 1.0, "3.000"),
        (FIFTY, 2.0, "1.500"),
        (FIFTY, 0.5, "6.000"),
        ("Hi", 1.0, "0.500"),
        ("a" * 9, 1.0, "0.540"),
    ],
)
def test_mock_speech_lasts_60_ms_per_character_divided_by_speed(text: str, speed: float, seconds: str) -> None:
    result = synthesize_speech(mock(), text=text, voice="alloy", speed=speed)

    assert result.duration_seconds == Decimal(seconds)
    assert probe_audio(result.audio).duration_seconds == Decimal(seconds)  # a real WAV of that length
    assert result.characters == len(text)


def test_mock_speech_is_a_wav_whatever_format_was_asked_for() -> None:
    result = synthesize_speech(mock(), text="Hello there", voice="alloy", fmt="mp3")

    assert (result.fmt, result.content_type) == ("wav", "audio/wav")
    info = probe_audio(result.audio)
    assert (info.kind, info.sample_rate, info.channels) == ("wav", 16000, 1)


def test_mock_speech_is_deterministic_and_the_voice_sets_the_pitch() -> None:
    first = synthesize_speech(mock(), text="Hello there", voice="alloy")
    again = synthesize_speech(mock(), text="Hello there", voice="alloy")
    other = [synthesize_speech(mock(), text="Hello there", voice=v) for v in ("echo", "nova", "onyx", "fable")]

    assert first.audio == again.audio
    assert any(o.audio != first.audio for o in other)
    assert {o.duration_seconds for o in other} == {first.duration_seconds}


def test_mock_speech_sounds_on_letters_and_is_silent_on_spaces() -> None:
    pcm = pcm_frames(synthesize_speech(mock(), text="aaaaa     bbbbb", voice="alloy").audio)
    per_character = 960 * 2  # 60 ms at 16 kHz, 16-bit

    assert any(pcm[: 5 * per_character])
    assert not any(pcm[5 * per_character : 10 * per_character])
    assert any(pcm[10 * per_character : 15 * per_character])


@pytest.mark.parametrize(("fail", "status", "retryable"), [("before:500", 500, True), ("before:401", 401, False)])
def test_mock_speech_fails_on_demand(fail: str, status: int, retryable: bool) -> None:
    with pytest.raises(ProviderError) as caught:
        synthesize_speech(mock(fail=fail), text="hello", voice="alloy")
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text": "   "}, "no text"),
        ({"fmt": "ogg"}, "Unknown speech format"),
        ({"speed": 4.5}, "Speed must be between"),
        ({"speed": 0.2}, "Speed must be between"),
    ],
)
def test_speech_arguments_no_provider_accepts_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize_speech(mock(), **{"text": "hello", "voice": "alloy", **params})


# ------------------------------------------------------------------------------ mock transcription


def test_mock_transcript_follows_the_real_duration_of_the_audio() -> None:
    result = transcribe(mock(), audio=files.wav_bytes(3.2), filename="memo.wav", timestamps=True)

    assert result.duration_seconds == Decimal("3.200")
    assert result.text == "[mock transcript of 3.2 s of audio] [second 2] [second 3] [second 4]"
    assert [(s.start, s.end) for s in result.segments] == [
        (Decimal(0), Decimal(1)),
        (Decimal(1), Decimal(2)),
        (Decimal(2), Decimal(3)),
        (Decimal(3), Decimal("3.200")),
    ]
    assert result.language == "en"


def test_mock_transcript_has_segments_only_when_timestamps_are_asked_for() -> None:
    result = transcribe(mock(), audio=files.ogg_opus_bytes(1.5), filename="x.ogg", language="de")

    assert result.segments == []
    assert (result.text, result.language) == ("[mock transcript of 1.5 s of audio] [second 2]", "de")


def test_transcription_refuses_a_file_that_is_not_audio_before_calling_the_provider(upstream: FakeUpstream) -> None:
    with pytest.raises(AudioError, match="not a supported audio format"):
        transcribe(openai(upstream, "whisper-1"), audio=b"just some text, renamed", filename="talk.mp3")
    assert upstream.requests == []


# ------------------------------------------------------------------------------ output formats

RESULT = TranscriptResult(
    text="Hello there. Fish & <chips>",
    language="english",
    duration_seconds=Decimal("2.500"),
    segments=[
        Segment(Decimal("0"), Decimal("1.000"), "Hello there."),
        Segment(Decimal("1.000"), Decimal("2.500"), "Fish & <chips>"),
    ],
)


def test_formats_srt() -> None:
    assert transcript_as(RESULT, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello there.\n\n2\n00:00:01,000 --> 00:00:02,500\nFish & <chips>\n"
    )


def test_formats_vtt_with_escaped_text() -> None:
    assert transcript_as(RESULT, "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.000\nHello there.\n\n"
        "00:00:01.000 --> 00:00:02.500\nFish &amp; &lt;chips&gt;\n\n"
    )


def test_formats_text_and_json() -> None:
    assert transcript_as(RESULT, "text") == "Hello there. Fish & <chips>\n"
    assert json.loads(transcript_as(RESULT, "json")) == {"text": "Hello there. Fish & <chips>"}


def test_formats_verbose_json_in_openais_shape() -> None:
    data = json.loads(transcript_as(RESULT, "verbose_json"))

    assert {k: data[k] for k in ("task", "language", "duration", "text")} == {
        "task": "transcribe",
        "language": "english",
        "duration": 2.5,
        "text": "Hello there. Fish & <chips>",
    }
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in data["segments"]] == [
        (0, 0.0, 1.0, "Hello there."),
        (1, 1.0, 2.5, "Fish & <chips>"),
    ]
    assert {"seek", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob"} <= set(
        data["segments"][0]
    )


def test_timestamps_carry_hours_and_round_to_the_millisecond() -> None:
    long = TranscriptResult("x", None, Decimal("3725.043"), [Segment(Decimal("3600"), Decimal("3725.0425"), "x")])

    assert "01:00:00,000 --> 01:02:05,043" in transcript_as(long, "srt")
    assert "01:00:00.000 --> 01:02:05.043" in transcript_as(long, "vtt")


def test_without_segments_srt_and_vtt_hold_one_cue_over_the_whole_audio() -> None:
    plain = TranscriptResult("All of it.\n\nIn one go.", None, Decimal("4.200"))

    assert transcript_as(plain, "srt") == "1\n00:00:00,000 --> 00:00:04,200\nAll of it. In one go.\n"
    assert transcript_as(TranscriptResult("", None, Decimal(1)), "vtt") == "WEBVTT\n\n"


def test_an_unknown_transcript_format_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown transcript format"):
        transcript_as(RESULT, "docx")


# ------------------------------------------------------------------------------ OpenAI speech (litellm)


def test_openai_speech_sends_model_voice_format_and_speed(upstream: FakeUpstream) -> None:
    result = synthesize_speech(openai(upstream, "tts-1"), text=FIFTY, voice="nova", speed=1.25, fmt="wav")

    [request] = upstream.requests
    assert request["path"] == "/v1/audio/speech"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "tts-1",
        "input": FIFTY,
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.25,
    }
    assert (result.fmt, result.content_type, result.characters) == ("wav", "audio/wav", 50)
    assert result.duration_seconds == Decimal(str(speech_seconds(FIFTY) / 1.25))
    assert probe_audio(result.audio).kind == "wav"


@pytest.mark.parametrize(
    ("fmt", "content_type", "probed"),
    [
        ("mp3", "audio/mpeg", True),
        ("opus", "audio/ogg", True),
        ("flac", "audio/flac", True),
        ("aac", "audio/aac", False),
    ],
)
def test_openai_speech_reports_what_it_received(
    upstream: FakeUpstream, fmt: str, content_type: str, probed: bool
) -> None:
    result = synthesize_speech(openai(upstream, "tts-1-hd"), text="Hello world", voice="alloy", fmt=fmt)

    assert (result.fmt, result.content_type) == (fmt, content_type)
    assert (result.duration_seconds is not None) is probed
    if result.duration_seconds is not None:  # probed
        assert abs(result.duration_seconds - Decimal(str(speech_seconds("Hello world")))) < Decimal("0.03")


def test_openai_speech_passes_instructions_to_models_that_take_them(upstream: FakeUpstream) -> None:
    synthesize_speech(openai(upstream, "gpt-4o-mini-tts"), text="Hi", voice="coral", instructions="Cheerful.")
    assert upstream.requests[0]["body"]["instructions"] == "Cheerful."


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (401, False), (400, False)])
def test_openai_speech_errors_are_classified(upstream: FakeUpstream, status: int, retryable: bool) -> None:
    with pytest.raises(ProviderError) as caught:
        synthesize_speech(openai(upstream, f"fake-fail-before:{status}"), text="hello", voice="alloy")

    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert len(upstream.requests) == 1  # no retries inside one attempt


def test_openai_speech_that_never_answers_times_out_as_retryable(upstream: FakeUpstream) -> None:
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        synthesize_speech(openai(upstream, "fake-hang", timeout=0.3), text="hello", voice="alloy")

    assert (caught.value.status_code, caught.value.retryable) == (408, True)
    assert time.perf_counter() - started < 3
    assert len(upstream.requests) == 1


# ------------------------------------------------------------------------------ OpenAI transcription


def test_openai_transcription_sends_the_file_model_language_and_prompt(upstream: FakeUpstream) -> None:
    audio = files.wav_bytes(3.0)
    result = transcribe(
        openai(upstream, "whisper-1"), audio=audio, filename="clip.wav", language="en", prompt="Aikeedo, Celery"
    )

    [request] = upstream.requests
    assert request["path"] == "/v1/audio/transcriptions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["fields"] == {
        "model": "whisper-1",
        "language": "en",
        "prompt": "Aikeedo, Celery",
        "response_format": "json",
    }
    [upload] = request["files"]
    assert (upload["field"], upload["filename"], upload["content_type"]) == ("file", "clip.wav", "audio/wav")
    assert upload["content"] == audio
    assert result.text == "Fake transcript of clip.wav."
    assert result.segments == []
    assert result.language == "en"  # json carries none: the hint
    # Billed on the file's own 3 s, not on the 2.5 s the upstream reports.
    assert result.duration_seconds == Decimal("3.000")


def test_openai_transcription_with_timestamps_returns_segments(upstream: FakeUpstream) -> None:
    result = transcribe(openai(upstream, "whisper-1"), audio=files.wav_bytes(3.0), filename="clip.wav", timestamps=True)

    fields = upstream.requests[0]["fields"]
    assert (fields["response_format"], fields["timestamp_granularities[]"]) == ("verbose_json", "segment")
    assert "language" not in fields
    assert result.segments == [
        Segment(Decimal("0.000"), Decimal("1.200"), "Fake transcript"),
        Segment(Decimal("1.200"), Decimal("2.500"), "of clip.wav."),
    ]
    assert (result.language, result.duration_seconds) == ("english", Decimal("3.000"))
    assert transcript_as(result, "srt").startswith("1\n00:00:00,000 --> 00:00:01,200\nFake transcript\n")


def test_the_upload_is_named_after_its_content_not_its_file_name(upstream: FakeUpstream) -> None:
    transcribe(openai(upstream, "whisper-1"), audio=files.mp3_bytes(40), filename="dir/voice memo.txt")

    [upload] = upstream.requests[0]["files"]
    assert (upload["filename"], upload["content_type"]) == ("voice memo.mp3", "audio/mpeg")


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (401, False), (404, False)])
def test_openai_transcription_errors_are_classified(upstream: FakeUpstream, status: int, retryable: bool) -> None:
    with pytest.raises(ProviderError) as caught:
        transcribe(openai(upstream, f"fake-fail-before:{status}"), audio=files.wav_bytes(1.0), filename="a.wav")

    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert len(upstream.requests) == 1


# ------------------------------------------------------------------------------ ElevenLabs speech


def test_elevenlabs_speech_posts_to_the_voice_with_the_api_key(upstream: FakeUpstream) -> None:
    result = synthesize_speech(eleven(upstream), text="Hello world", voice="JBFqnCBsd6RMkjVDRZzb")

    [request] = upstream.requests
    assert request["path"] == "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"
    assert request["headers"]["xi-api-key"] == "xi-test"
    assert "Authorization" not in request["headers"]
    assert request["query"] == {"output_format": "mp3_44100_128"}
    assert request["body"] == {"text": "Hello world", "model_id": "eleven_multilingual_v2"}
    assert (result.fmt, result.content_type, result.characters) == ("mp3", "audio/mpeg", 11)
    assert probe_audio(result.audio).kind == "mp3"


def test_elevenlabs_wav_is_its_pcm_wrapped_in_a_wav_header(upstream: FakeUpstream) -> None:
    result = synthesize_speech(eleven(upstream, base="/v1/"), text=FIFTY, voice="v1", fmt="wav", speed=1.1)

    request = upstream.requests[0]
    assert request["query"] == {"output_format": "pcm_24000"}
    assert request["body"]["voice_settings"] == {"speed": 1.1}
    info = probe_audio(result.audio)
    assert (info.kind, info.sample_rate, info.channels) == ("wav", 24000, 1)
    assert result.duration_seconds == info.duration_seconds == Decimal(str(speech_seconds(FIFTY)))
    assert result.content_type == "audio/wav"


@pytest.mark.parametrize(("params", "message"), [({"speed": 2.0}, "speed must be between"), ({"fmt": "aac"}, "aac")])
def test_elevenlabs_refuses_what_it_cannot_do_without_calling(
    upstream: FakeUpstream, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        synthesize_speech(eleven(upstream), **{"text": "hello", "voice": "v1", **params})
    assert caught.value.retryable is False
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("target_args", "status", "retryable"),
    [
        ({"model": "fake-fail-before:500"}, 500, True),
        ({"model": "fake-fail-before:429"}, 429, True),
        ({"api_key": "bad-key"}, 401, False),
    ],
)
def test_elevenlabs_speech_errors_are_classified(
    upstream: FakeUpstream, target_args: dict[str, Any], status: int, retryable: bool
) -> None:
    with pytest.raises(ProviderError) as caught:
        synthesize_speech(eleven(upstream, **target_args), text="hello", voice="v1")
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)


def test_elevenlabs_that_never_answers_times_out_as_retryable(upstream: FakeUpstream) -> None:
    config = ProviderConfig(kind="elevenlabs", api_key="xi-test", base_url=upstream.base_url, timeout=0.3)
    with pytest.raises(ProviderError) as caught:
        synthesize_speech(ModelTarget(config, "fake-hang"), text="hello", voice="v1")
    assert (caught.value.status_code, caught.value.retryable) == (408, True)


def test_elevenlabs_without_an_api_key_is_a_configuration_error(upstream: FakeUpstream) -> None:
    with pytest.raises(ProviderError, match="API key") as caught:
        synthesize_speech(eleven(upstream, api_key=""), text="hello", voice="v1")
    assert caught.value.retryable is False
    assert upstream.requests == []


def test_elevenlabs_does_not_transcribe(upstream: FakeUpstream) -> None:
    with pytest.raises(ProviderError, match="not supported"):
        transcribe(eleven(upstream), audio=files.wav_bytes(1.0), filename="a.wav")


# ------------------------------------------------------------------------------ voice cloning


SAMPLES = [("me talking.m4a", files.m4a_bytes(30.0)), ("more.bin", files.wav_bytes(2.0))]


def test_elevenlabs_clone_uploads_the_samples_as_multipart(upstream: FakeUpstream) -> None:
    voice = clone_voice(eleven_config(upstream), name="  Narrator  ", samples=SAMPLES, description="Calm")

    [request] = upstream.requests
    assert request["path"] == "/v1/voices/add"
    assert request["headers"]["xi-api-key"] == "xi-test"
    assert request["fields"] == {"name": "Narrator", "description": "Calm"}
    assert [(f["field"], f["filename"], f["content_type"], f["content"]) for f in request["files"]] == [
        ("files", "me talking.m4a", "audio/mp4", SAMPLES[0][1]),
        ("files", "more.wav", "audio/wav", SAMPLES[1][1]),
    ]
    assert voice == ClonedVoice(voice_id=voice.voice_id, requires_verification=False)
    assert upstream.voices[voice.voice_id] == "Narrator"


def test_elevenlabs_delete_removes_the_voice_and_a_missing_voice_counts_as_deleted(upstream: FakeUpstream) -> None:
    config = eleven_config(upstream)
    voice = clone_voice(config, name="Temp", samples=SAMPLES[1:])

    delete_voice(config, voice.voice_id)
    assert voice.voice_id not in upstream.voices
    delete_voice(config, voice.voice_id)  # already gone upstream (404): not an error

    deletes = [r for r in upstream.requests if r.get("method") == "DELETE"]
    assert [r["path"] for r in deletes] == [f"/v1/voices/{voice.voice_id}"] * 2
    assert all(r["headers"]["xi-api-key"] == "xi-test" for r in deletes)


def test_elevenlabs_delete_failures_are_classified(upstream: FakeUpstream) -> None:
    with pytest.raises(ProviderError) as caught:
        delete_voice(eleven_config(upstream), "fake-fail-before:500")
    assert (caught.value.status_code, caught.value.retryable) == (500, True)
    with pytest.raises(ProviderError) as caught:
        delete_voice(eleven_config(upstream, api_key="bad-key"), "anything")
    assert (caught.value.status_code, caught.value.retryable) == (401, False)


@pytest.mark.parametrize(
    ("name", "api_key", "status", "retryable"),
    [("fake-fail-before:503", "xi-test", 503, True), ("Narrator", "bad-key", 401, False)],
)
def test_elevenlabs_clone_errors_are_classified(
    upstream: FakeUpstream, name: str, api_key: str, status: int, retryable: bool
) -> None:
    with pytest.raises(ProviderError) as caught:
        clone_voice(eleven_config(upstream, api_key=api_key), name=name, samples=SAMPLES[1:])
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)


def test_mock_clone_is_deterministic_and_delete_is_a_no_op() -> None:
    config = ProviderConfig(kind=ProviderKind.MOCK)
    first = clone_voice(config, name="Narrator", samples=SAMPLES)

    assert first == clone_voice(config, name="Narrator", samples=SAMPLES)
    assert first.voice_id.startswith("mock-voice-")
    assert clone_voice(config, name="Narrator", samples=SAMPLES[:1]) != first
    assert clone_voice(config, name="Other", samples=SAMPLES) != first
    delete_voice(config, first.voice_id)
    # A cloned mock voice speaks like any other.
    assert synthesize_speech(mock(), text="hello", voice=first.voice_id).duration_seconds == Decimal("0.500")


def test_mock_clone_fails_on_demand() -> None:
    with pytest.raises(ProviderError) as caught:
        clone_voice(ProviderConfig(kind=ProviderKind.MOCK, options={"fail": "before:500"}), name="N", samples=SAMPLES)
    assert caught.value.retryable is True


def test_a_provider_without_voice_cloning_is_refused() -> None:
    config = ProviderConfig(kind=ProviderKind.OPENAI, api_key="k")
    with pytest.raises(ProviderError, match="cannot clone") as caught:
        clone_voice(config, name="N", samples=SAMPLES)
    assert caught.value.retryable is False
    with pytest.raises(ProviderError, match="cannot delete"):
        delete_voice(config, "v")


@pytest.mark.parametrize(
    ("name", "samples", "limit", "message"),
    [
        ("N", [], None, "at least one"),
        ("N", [("a.wav", files.wav_bytes(0.5))] * 26, None, "at most 25 samples"),
        ("N", SAMPLES, 1000, "the limit is"),
        ("N", [SAMPLES[1], ("notes.mp3", b"these are my notes, not audio")], None, "notes.mp3: The file is not"),
        ("N", [("silence.wav", files.wav_bytes(0.0))], None, "silence.wav: The audio has no duration"),
        ("   ", SAMPLES, None, "needs a name"),
        ("x" * 101, SAMPLES, None, "longer than 100"),
    ],
    ids=["none", "too-many", "too-large", "not-audio", "empty-audio", "no-name", "long-name"],
)
def test_samples_are_validated_before_anything_is_sent(
    upstream: FakeUpstream, name: str, samples: list[tuple[str, bytes]], limit: int | None, message: str
) -> None:
    kwargs: dict[str, Any] = {"max_total_bytes": limit} if limit else {}
    with pytest.raises(VoiceSampleError, match=message):
        clone_voice(eleven_config(upstream), name=name, samples=samples, **kwargs)
    with pytest.raises(VoiceSampleError, match=message):
        clone_voice(ProviderConfig(kind=ProviderKind.MOCK), name=name, samples=samples, **kwargs)
    assert upstream.requests == []


def test_twenty_five_samples_are_accepted() -> None:
    voice = clone_voice(
        ProviderConfig(kind=ProviderKind.MOCK), name="N", samples=[("a.wav", files.wav_bytes(0.1))] * 25
    )
    assert voice.voice_id.startswith("mock-voice-")

"""`POST /v1/audio/speech` and `POST /v1/audio/transcriptions` through the official `openai`
SDK on the real ASGI app: bytes and transcripts in OpenAI's formats, charged once, invalid
uploads refused with 400 (too large for the plan: 413) in OpenAI's error shape."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from django.test import Client

from apps.credits.models import CreditAccount
from apps.credits.rates import credits_quote
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from tests.api.conftest import asgi_client, make_key, run, sdk, sdk_error
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.fakes.audio import wav_bytes
from tests.media.conftest import FUNDS, fund, on_plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def audio_models(image_model: AIModel) -> None:
    audio_catalog_seed(Provider, AIModel)


@pytest.fixture
def raw_key(alpha: Team, audio_models: None) -> str:
    fund(alpha.workspace)
    return make_key(alpha)[1]


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


# ------------------------------------------------------------------------------------ speech


def test_sdk_speech_returns_audio_bytes_and_charges_once(alpha: Team, raw_key: str) -> None:
    text = "The quick brown fox jumps over the lazy dog."

    async def scenario() -> Any:
        response = await sdk(raw_key).audio.speech.create(
            model="mock-tts", input=text, voice="alloy", speed=1.25, response_format="wav", instructions="Calm."
        )
        return response.content, response.response.headers

    content, headers = run(scenario)
    assert content[:4] == b"RIFF"
    assert content[8:12] == b"WAVE"
    assert headers["content-type"] == "audio/wav"
    quote = credits_quote(service="speech", model="mock-tts", characters=len(text))
    assert available(alpha) == FUNDS - quote.units
    job = GenerationJob.objects.get()
    assert (job.kind, job.status, job.credits_charged_units) == (JobKind.SPEECH, JobStatus.SUCCEEDED, quote.units)
    assert job.parameters["speed"] == 1.25
    assert job.parameters["instructions"] == "Calm."
    assert_ledger_consistent()


def test_speech_invalid_parameters_are_400_with_openai_param(raw_key: str) -> None:
    async def too_fast() -> Any:
        return await sdk(raw_key).audio.speech.create(model="mock-tts", input="hi", voice="alloy", speed=9)

    with pytest.raises(openai.BadRequestError) as exc:
        run(too_fast)
    assert sdk_error(exc.value)["param"] == "speed"

    async def too_long() -> Any:
        return await sdk(raw_key).audio.speech.create(model="mock-tts", input="x" * 4097, voice="alloy")

    with pytest.raises(openai.BadRequestError) as exc:
        run(too_long)
    assert sdk_error(exc.value)["param"] == "input"
    assert "4097" in sdk_error(exc.value)["message"]

    async def image_model() -> Any:
        return await sdk(raw_key).audio.speech.create(model="mock-image", input="hi", voice="alloy")

    with pytest.raises(openai.BadRequestError) as exc:
        run(image_model)
    assert sdk_error(exc.value)["code"] == "model_not_supported"
    assert not GenerationJob.objects.exists()


def test_speech_needs_audio_scope(alpha: Team, audio_models: None) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["images"])

    async def scenario() -> Any:
        return await sdk(raw).audio.speech.create(model="mock-tts", input="hi", voice="alloy")

    with pytest.raises(openai.PermissionDeniedError):
        run(scenario)


def test_speech_insufficient_credits_is_402(alpha: Team, audio_models: None) -> None:
    _, raw = make_key(alpha)

    async def scenario() -> Any:
        return await sdk(raw).audio.speech.create(model="mock-tts", input="hi", voice="alloy")

    with pytest.raises(openai.APIStatusError) as exc:
        run(scenario)
    assert exc.value.status_code == 402
    assert sdk_error(exc.value)["code"] == "insufficient_credits"
    assert not GenerationJob.objects.exists()


# ----------------------------------------------------------------------------- transcription


def transcribe(raw_key: str, data: bytes, name: str = "talk.wav", **kwargs: Any) -> Any:
    async def scenario() -> Any:
        return await sdk(raw_key).audio.transcriptions.create(file=(name, data), **kwargs)

    return run(scenario)


def test_sdk_transcription_json_text_srt_verbose(alpha: Team, raw_key: str) -> None:
    audio = wav_bytes(4.2)
    result = transcribe(raw_key, audio, model="mock-whisper")
    assert isinstance(result.text, str)
    assert result.text
    text = transcribe(raw_key, audio, model="mock-whisper", response_format="text")
    assert text.strip() == result.text
    srt = transcribe(raw_key, audio, model="mock-whisper", response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> ")
    vtt = transcribe(raw_key, audio, model="mock-whisper", response_format="vtt")
    assert vtt.startswith("WEBVTT")
    verbose = transcribe(
        raw_key,
        audio,
        model="mock-whisper",
        response_format="verbose_json",
        timestamp_granularities=["segment"],
        language="en",
    )
    assert verbose.duration == pytest.approx(4.2)
    assert verbose.language == "en"
    assert verbose.segments
    assert verbose.segments[-1].end <= 4.2 + 1e-6
    # Five jobs, each charged once per started second of real audio.
    quote = credits_quote(service="transcription", model="mock-whisper", audio_seconds=Decimal(5))
    jobs = GenerationJob.objects.filter(kind=JobKind.TRANSCRIPTION)
    assert jobs.count() == 5
    assert all(j.status == JobStatus.SUCCEEDED and j.credits_charged_units == quote.units for j in jobs)
    assert available(alpha) == FUNDS - 5 * quote.units
    # Each upload is kept with its job (not an orphan).
    assert MediaFile.objects.filter(kind=MediaKind.UPLOAD, job__isnull=True).count() == 0
    assert_ledger_consistent()


def test_transcription_content_types(raw_key: str) -> None:
    async def scenario() -> Any:
        async with asgi_client() as http:
            responses = {}
            for fmt in ("json", "text", "srt", "vtt", "verbose_json"):
                responses[fmt] = await http.post(
                    "/v1/audio/transcriptions",
                    headers={"Authorization": f"Bearer {raw_key}"},
                    data={"model": "mock-whisper", "response_format": fmt},
                    files={"file": ("a.wav", wav_bytes(1), "audio/wav")},
                )
            return responses

    responses = run(scenario)
    assert all(r.status_code == 200 for r in responses.values())
    assert responses["json"].headers["content-type"] == "application/json"
    assert set(json.loads(responses["json"].content)) == {"text"}
    assert responses["text"].headers["content-type"].startswith("text/plain")
    assert responses["srt"].headers["content-type"].startswith("application/x-subrip")
    assert responses["vtt"].headers["content-type"].startswith("text/vtt")
    assert json.loads(responses["verbose_json"].content)["task"] == "transcribe"


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"just some text pretending to be audio", "fake.wav", "not a supported audio format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "picture.mp3", "not a supported audio format"),
        (wav_bytes(1)[:20], "cut.wav", "corrupt"),
        (wav_bytes(1)[:44], "silent.wav", "no duration"),
        (b"", "empty.wav", "empty"),
    ],
    ids=["text", "png", "truncated", "no-samples", "empty"],
)
def test_invalid_uploads_are_400(alpha: Team, raw_key: str, data: bytes, name: str, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        transcribe(raw_key, data, name, model="mock-whisper")
    body = sdk_error(exc.value)
    assert body["param"] == "file"
    assert words in body["message"].lower()
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()
    assert available(alpha) == FUNDS


def test_upload_over_the_plans_limit_is_413(alpha: Team, raw_key: str, plans: None) -> None:
    from apps.billing.models import Plan

    Plan.objects.filter(code="starter").update(upload_max_mb=1)  # Starter has the API
    on_plan(alpha.workspace, "starter")
    with pytest.raises(openai.APIStatusError) as exc:
        transcribe(raw_key, wav_bytes(1)[:44] + b"\0" * (1024 * 1024), model="mock-whisper")
    assert exc.value.status_code == 413
    assert sdk_error(exc.value)["code"] == "too_large"
    assert sdk_error(exc.value)["param"] == "file"
    assert "the Starter plan's limit is 1 MB" in sdk_error(exc.value)["message"]
    assert not MediaFile.objects.exists()
    assert not GenerationJob.objects.exists()
    assert transcribe(raw_key, wav_bytes(1), model="mock-whisper").text  # under the limit


def test_transcription_bad_parameters(raw_key: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        transcribe(raw_key, wav_bytes(1), model="mock-whisper", response_format="docx")
    assert sdk_error(exc.value)["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as exc:
        transcribe(raw_key, wav_bytes(1), model="mock-whisper", timestamp_granularities=["word"])
    assert sdk_error(exc.value)["param"] == "timestamp_granularities"
    with pytest.raises(openai.BadRequestError) as exc:
        transcribe(raw_key, wav_bytes(1), model="mock-tts")
    assert sdk_error(exc.value)["code"] == "model_not_supported"
    with pytest.raises(openai.NotFoundError):
        transcribe(raw_key, wav_bytes(1), model="no-such-model")

    async def json_body() -> httpx.Response:
        async with asgi_client() as http:
            return await http.post(
                "/v1/audio/transcriptions",
                headers={"Authorization": f"Bearer {raw_key}"},
                json={"model": "mock-whisper"},
            )

    response = run(json_body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert not MediaFile.objects.exists()


def test_transcription_insufficient_credits_is_402_and_upload_not_kept(alpha: Team, audio_models: None) -> None:
    _, raw = make_key(alpha)
    with pytest.raises(openai.APIStatusError) as exc:
        transcribe(raw, wav_bytes(1), model="mock-whisper")
    assert exc.value.status_code == 402
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


def test_outsider_gets_404_on_audio_jobs_and_files(alpha: Team, beta: Team, raw_key: str, client_for: Any) -> None:
    transcribe(raw_key, wav_bytes(1), model="mock-whisper")

    async def speak() -> Any:
        return await sdk(raw_key).audio.speech.create(model="mock-tts", input="hello", voice="alloy")

    run(speak)
    _, beta_raw = make_key(beta)
    outsider = client_for(beta.owner, beta.workspace)
    owner = client_for(alpha.member, alpha.workspace)
    for job in GenerationJob.objects.all():
        assert Client().get(f"/api/v1/jobs/{job.pk}/", HTTP_AUTHORIZATION=f"Bearer {beta_raw}").status_code == 404
        assert outsider.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
        assert owner.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    assert outsider.get("/api/v1/jobs/").json()["count"] == 0
    assert owner.get("/api/v1/jobs/").json()["count"] == 2


@pytest.mark.outsider("openai:audio_speech", "openai:audio_transcriptions")
def test_a_revoked_key_gets_no_speech_or_transcript_and_leaves_no_upload(alpha: Team, raw_key: str) -> None:
    import functools

    from apps.apikeys.models import ApiKey
    from apps.apikeys.services import apikey_revoke

    apikey_revoke(key=ApiKey.objects.get(workspace=alpha.workspace), acting_user=alpha.owner)

    async def scenario(raw: str | None) -> tuple[Any, Any]:
        headers = {"Authorization": f"Bearer {raw}"} if raw else {}
        async with asgi_client() as http:
            speech = await http.post(
                "/v1/audio/speech", json={"model": "mock-tts", "input": "hello", "voice": "alloy"}, headers=headers
            )
            transcript = await http.post(
                "/v1/audio/transcriptions",
                files={"file": ("talk.wav", wav_bytes(1), "audio/wav")},
                data={"model": "mock-whisper"},
                headers=headers,
            )
            return speech, transcript

    for raw, code in [(raw_key, "invalid_api_key"), ("ak_wrong", "invalid_api_key"), (None, "missing_api_key")]:
        for response in run(functools.partial(scenario, raw)):
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]["code"] == code
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()
    assert available(alpha) == FUNDS

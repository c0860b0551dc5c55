"""The speech and transcription job kinds on the mock provider: validated, quoted, charged
exactly once (even when the task runs twice), files stored with their measured duration."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest

from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_create, media_cleanup
from apps.media.storage import audio_upload_create
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.fakes.audio import mp3_bytes, wav_bytes
from tests.media.conftest import FUNDS, fund, reservation_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def audio_models(image_model: AIModel) -> dict[str, AIModel]:
    audio_catalog_seed(Provider, AIModel)
    return {m.model_id: m for m in AIModel.objects.select_related("provider").filter(model_id__startswith="mock-")}


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


def speech(team: Team, model: AIModel, key: str = "s1", **params: Any) -> GenerationJob:
    parameters = {"text": "Hello there, this is a test of speech.", "voice": "alloy", **params}
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.SPEECH,
        model=model,
        parameters=parameters,
        idempotency_key=key,
    )


def upload(team: Team, data: bytes, name: str = "talk.wav") -> MediaFile:
    return audio_upload_create(workspace_id=team.workspace.pk, file=io.BytesIO(data), filename=name)


def transcription(team: Team, model: AIModel, upload_id: int, key: str = "t1", **params: Any) -> GenerationJob:
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.TRANSCRIPTION,
        model=model,
        parameters={"upload": upload_id, **params},
        idempotency_key=key,
    )


# ------------------------------------------------------------------------------------ catalog


def test_catalog_seeds_audio_models_with_flags(audio_models: dict[str, AIModel]) -> None:
    assert audio_models["mock-tts"].supports_speech
    assert audio_models["mock-whisper"].supports_transcription
    openai = {m.model_id: m for m in AIModel.objects.filter(provider__kind="openai")}
    assert openai["tts-1"].supports_speech
    assert openai["tts-1-hd"].supports_speech
    assert openai["whisper-1"].supports_transcription
    for model_id in ("tts-1", "tts-1-hd"):
        assert credits_quote(service="speech", model=model_id, characters=1000).units > 0
    assert credits_quote(service="transcription", model="whisper-1", audio_seconds=Decimal(60)).units > 0


# ------------------------------------------------------------------------------------ speech


def test_speech_job_stores_audio_and_charges_per_characters(
    alpha: Team, audio_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    text = "Hello there, this is a test of speech."
    quote = credits_quote(service="speech", model="mock-tts", characters=len(text))
    with django_capture_on_commit_callbacks(execute=True):
        job = speech(alpha, audio_models["mock-tts"], text=text, speed=1.5, format="wav")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.credits_reserved_units == job.credits_charged_units == quote.units > 0
    assert available(alpha) == FUNDS - quote.units
    [audio] = MediaFile.objects.filter(job=job)
    assert audio.kind == MediaKind.AUDIO
    assert audio.content_type == "audio/wav"
    assert audio.duration is not None
    assert audio.duration > 0
    with audio.file.open("rb") as handle:
        assert handle.read(4) == b"RIFF"
    assert audio.metadata["voice"] == "alloy"
    assert_ledger_consistent()


def test_speech_task_run_twice_charges_once(
    alpha: Team, audio_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = speech(alpha, audio_models["mock-tts"])
    run_job.apply(args=(job.pk,))
    run_job.apply(args=(job.pk,))
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert MediaFile.objects.filter(job=job, kind=MediaKind.AUDIO).count() == 1
    assert available(alpha) == FUNDS - job.credits_charged_units
    assert reservation_of(job).status == Reservation.Status.SETTLED
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 4097}, "text"),
        ({"speed": 5}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"format": "ogg"}, "format"),
        ({"voice": "no spaces allowed"}, "voice"),
        ({"pitch": 2}, "pitch"),
    ],
)
def test_speech_invalid_parameters(
    alpha: Team, audio_models: dict[str, AIModel], params: dict[str, Any], param: str
) -> None:
    fund(alpha.workspace)
    with pytest.raises(MediaError) as exc:
        speech(alpha, audio_models["mock-tts"], **params)
    assert (exc.value.status_code, exc.value.param) == (400, param)
    assert not GenerationJob.objects.exists()


def test_speech_needs_a_speech_model(alpha: Team, audio_models: dict[str, AIModel]) -> None:
    fund(alpha.workspace)
    with pytest.raises(MediaError) as exc:
        speech(alpha, audio_models["mock-whisper"])
    assert exc.value.code == "model_not_supported"


def test_speech_insufficient_credits_creates_nothing(alpha: Team, audio_models: dict[str, AIModel]) -> None:
    with pytest.raises(InsufficientCredits):
        speech(alpha, audio_models["mock-tts"])
    assert not GenerationJob.objects.exists()


# ----------------------------------------------------------------------------- transcription


def test_upload_is_validated_by_content(alpha: Team) -> None:
    with pytest.raises(MediaError) as exc:
        upload(alpha, b"this is plain text, not audio at all", "fake.wav")
    assert (exc.value.status_code, exc.value.code) == (400, "invalid_file")
    with pytest.raises(MediaError) as exc:
        upload(alpha, wav_bytes(1)[:30], "cut.wav")
    assert exc.value.code == "invalid_file"
    with pytest.raises(MediaError) as exc:
        audio_upload_create(workspace_id=alpha.workspace.pk, file=io.BytesIO(wav_bytes(2)), max_bytes=1000)
    assert (exc.value.status_code, exc.value.code) == (413, "too_large")
    assert "the limit is" in exc.value.message
    assert not MediaFile.objects.exists()
    stored = upload(alpha, mp3_bytes(100), "song.bin")
    assert (stored.kind, stored.content_type, stored.job_id) == (MediaKind.UPLOAD, "audio/mpeg", None)
    assert stored.duration is not None
    assert stored.duration > 0


def test_transcription_charged_per_real_minute_rounded_up_to_the_second(
    alpha: Team, audio_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    stored = upload(alpha, wav_bytes(75.3))
    assert stored.duration == Decimal("75.300")
    quote = credits_quote(service="transcription", model="mock-whisper", audio_seconds=Decimal(76))
    with django_capture_on_commit_callbacks(execute=True):
        job = transcription(alpha, audio_models["mock-whisper"], stored.pk, format="srt", language="en")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.credits_reserved_units == job.credits_charged_units == quote.units
    assert available(alpha) == FUNDS - quote.units
    stored.refresh_from_db()
    assert stored.job_id == job.pk  # attached: not an orphan for the cleanup
    [transcript] = MediaFile.objects.filter(job=job, kind=MediaKind.TRANSCRIPT)
    assert transcript.content_type.startswith("application/x-subrip")
    with transcript.file.open("rb") as handle:
        srt = handle.read().decode()
    assert srt.startswith("1\n00:00:00,000 --> ")
    data = transcript.metadata["transcript"]
    assert data["text"]
    assert data["duration"] == "75.300"
    assert data["segments"]
    assert_ledger_consistent()


def test_transcription_task_run_twice_charges_once(
    alpha: Team, audio_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    stored = upload(alpha, wav_bytes(3))
    with django_capture_on_commit_callbacks(execute=False):
        job = transcription(alpha, audio_models["mock-whisper"], stored.pk)
    run_job.apply(args=(job.pk,))
    run_job.apply(args=(job.pk,))
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert MediaFile.objects.filter(job=job, kind=MediaKind.TRANSCRIPT).count() == 1
    assert available(alpha) == FUNDS - job.credits_charged_units
    quote = credits_quote(service="transcription", model="mock-whisper", audio_seconds=3)
    assert job.credits_charged_units == quote.units
    assert_ledger_consistent()


def test_transcription_of_another_workspaces_upload_is_refused(
    alpha: Team, beta: Team, audio_models: dict[str, AIModel]
) -> None:
    fund(beta.workspace)
    stored = upload(alpha, wav_bytes(1))
    with pytest.raises(MediaError) as exc:
        transcription(beta, audio_models["mock-whisper"], stored.pk)
    assert (exc.value.status_code, exc.value.param) == (400, "upload")
    assert not GenerationJob.objects.exists()


def test_transcription_upload_cannot_be_used_twice(
    alpha: Team, audio_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    stored = upload(alpha, wav_bytes(1))
    with django_capture_on_commit_callbacks(execute=True):
        transcription(alpha, audio_models["mock-whisper"], stored.pk)
    with pytest.raises(MediaError):
        transcription(alpha, audio_models["mock-whisper"], stored.pk, key="t2")


@pytest.mark.parametrize(
    ("params", "param"),
    [({"format": "docx"}, "format"), ({"language": "English!"}, "language"), ({"timestamps": "yes"}, "timestamps")],
)
def test_transcription_invalid_parameters(
    alpha: Team, audio_models: dict[str, AIModel], params: dict[str, Any], param: str
) -> None:
    fund(alpha.workspace)
    stored = upload(alpha, wav_bytes(1))
    with pytest.raises(MediaError) as exc:
        transcription(alpha, audio_models["mock-whisper"], stored.pk, **params)
    assert exc.value.param == param


def test_transcription_insufficient_credits(alpha: Team, audio_models: dict[str, AIModel]) -> None:
    stored = upload(alpha, wav_bytes(1))
    with pytest.raises(InsufficientCredits):
        transcription(alpha, audio_models["mock-whisper"], stored.pk)
    assert not GenerationJob.objects.exists()
    stored.refresh_from_db()
    assert stored.job_id is None


def test_unused_uploads_are_cleaned_up(alpha: Team) -> None:
    from datetime import timedelta

    from django.utils import timezone

    stored = upload(alpha, wav_bytes(1))
    MediaFile.objects.filter(pk=stored.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert media_cleanup()["orphaned"] == 1
    assert not MediaFile.objects.filter(pk=stored.pk).exists()


def test_jobs_api_creates_speech_job(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    body = {"kind": "speech", "model": "mock-tts", "parameters": {"text": "hi there", "voice": "nova"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 202, response.content
    detail = client.get(f"/api/v1/jobs/{response.json()['id']}/").json()
    assert detail["status"] == "succeeded"
    [result] = detail["results"]
    assert result["kind"] == "audio"
    assert result["duration"]
    assert client.get(result["url"]).status_code == 200

"""The speech and transcription studio pages: render, submit a job (charged once, with the
task run eagerly on commit), show the result, list the workspace's own results with a pinned
query count; bad uploads are a form error (400); another workspace's ids are 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind, Voice
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.fakes.audio import wav_bytes
from tests.media.conftest import FUNDS, fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def audio_models(image_model: AIModel) -> dict[str, AIModel]:
    audio_catalog_seed(Provider, AIModel)
    return {m.model_id: m for m in AIModel.objects.select_related("provider").filter(model_id__startswith="mock-")}


def speak(
    client: Any, capture: Any, text: str = "Hello from the studio.", nonce: str = "n1", voice: str = "alloy"
) -> Any:
    form = {"model": "mock-tts", "voice": voice, "speed": "1.0", "format": "wav", "text": text, "nonce": nonce}
    with capture(execute=True):
        return client.post("/studio/speech/", form)


def transcribe(client: Any, capture: Any, data: bytes, nonce: str = "t1", **extra: Any) -> Any:
    form = {"model": "mock-whisper", "format": "text", "language": "en", "timestamps": "on", "nonce": nonce, **extra}
    form["file"] = SimpleUploadedFile("talk.wav", data, content_type="audio/wav")
    with capture(execute=True):
        return client.post("/studio/transcribe/", form)


def test_nav_links_and_pages_render(alpha: Team, audio_models: dict[str, AIModel], client_for: Any) -> None:
    client = client_for(alpha.member, alpha.workspace)
    speech = client.get("/studio/speech/")
    assert speech.status_code == 200
    assert b'data-testid="speech-form"' in speech.content
    assert b'href="/studio/speech/"' in speech.content
    assert b'href="/studio/transcribe/"' in speech.content
    page = client.get("/studio/transcribe/")
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content


def test_pages_need_sign_in(client: Any) -> None:
    assert client.get("/studio/speech/").status_code == 302
    assert client.get("/studio/transcribe/").status_code == 302


def test_speech_studio_creates_a_job_charged_once_and_plays_it(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    response = speak(client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert job.kind == JobKind.SPEECH
    assert job.status == JobStatus.SUCCEEDED
    assert response["Location"].endswith(f"/studio/speech/?job={job.pk}")
    assert job.credits_charged_units == job.credits_reserved_units > 0
    assert Reservation.objects.filter(workspace=alpha.workspace).count() == 1
    assert CreditAccount.objects.get(workspace=alpha.workspace).available_units == FUNDS - job.credits_charged_units
    assert_ledger_consistent()
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert b'data-testid="speech-result"' in shown.content
    assert b"<audio controls" in shown.content
    assert shown.content.count(b'data-testid="speech-item"') == 1
    audio = MediaFile.objects.get(job=job, kind=MediaKind.AUDIO)
    played = client.get(shown.context["job_state"]["results"][0]["url"])
    assert played.status_code == 200
    assert b"".join(played.streaming_content) == audio.file.open("rb").read()


def test_speech_studio_shows_errors_on_the_form(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    unfunded = speak(client, django_capture_on_commit_callbacks)  # no credits
    assert unfunded.status_code == 400
    fund(alpha.workspace)
    bad_voice = client.post(
        "/studio/speech/", {"model": "mock-tts", "voice": "no spaces!", "speed": "1", "format": "mp3", "text": "hi"}
    )
    assert bad_voice.status_code == 400
    assert b"Pick one of the listed voices." in bad_voice.content
    too_fast = client.post(
        "/studio/speech/", {"model": "mock-tts", "voice": "alloy", "speed": "9", "format": "mp3", "text": "hi"}
    )
    assert too_fast.status_code == 400
    assert not GenerationJob.objects.exists()


def test_speech_list_is_paginated_with_pinned_queries(
    alpha: Team,
    audio_models: dict[str, AIModel],
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
    django_assert_max_num_queries: Any,
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    for i in range(2):
        speak(client, django_capture_on_commit_callbacks, text=f"Line {i}.", nonce=f"a{i}")
    with django_assert_max_num_queries(25) as few:
        response = client.get("/studio/speech/")
    assert response.content.count(b'data-testid="speech-item"') == 2
    baseline = len(few)  # read now: each request clears the connection's query log
    for i in range(2, 23):
        speak(client, django_capture_on_commit_callbacks, text=f"Line {i}.", nonce=f"a{i}")
    with django_assert_max_num_queries(baseline):
        response = client.get("/studio/speech/")
    assert response.content.count(b'data-testid="speech-item"') == 20
    assert client.get("/studio/speech/?page=2").content.count(b'data-testid="speech-item"') == 3


def test_transcription_studio_uploads_transcribes_and_offers_downloads(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    response = transcribe(client, django_capture_on_commit_callbacks, wav_bytes(seconds=3))
    assert response.status_code == 302, response.content
    job = GenerationJob.objects.get()
    assert job.kind == JobKind.TRANSCRIPTION
    assert job.status == JobStatus.SUCCEEDED
    assert job.parameters["timestamps"] is True
    assert job.parameters["language"] == "en"
    assert job.credits_charged_units == job.credits_reserved_units > 0
    assert Reservation.objects.filter(workspace=alpha.workspace).count() == 1
    assert_ledger_consistent()
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert b'data-testid="transcript"' in shown.content
    assert shown.content.count(b'data-testid="transcript-item"') == 1
    for fmt, marker in (("text", None), ("srt", b"-->"), ("vtt", b"WEBVTT"), ("json", b'"segments"')):
        download = client.get(f"/studio/transcribe/{job.pk}/{fmt}/")
        assert download.status_code == 200
        assert "attachment" in download["Content-Disposition"]
        if marker:
            assert marker in download.content
    assert client.get(f"/studio/transcribe/{job.pk}/exe/").status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"MZ\x90\x00 not audio at all" * 10, b"file"), (b"RIFF\x00\x00\x00\x00WAVEjunk", b"file")],
)
def test_bad_upload_is_a_form_error(
    alpha: Team,
    audio_models: dict[str, AIModel],
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
    data: bytes,
    message: bytes,
) -> None:
    fund(alpha.workspace)
    response = transcribe(client_for(alpha.member, alpha.workspace), django_capture_on_commit_callbacks, data)
    assert response.status_code == 400
    assert response.context["form"].errors["file"]
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


def test_missing_upload_and_bad_language_are_form_errors(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    assert client.post("/studio/transcribe/", {"model": "mock-whisper", "format": "text"}).status_code == 400
    bad = client.post(
        "/studio/transcribe/",
        {
            "model": "mock-whisper",
            "format": "text",
            "language": "english!",
            "file": SimpleUploadedFile("a.wav", wav_bytes(seconds=1)),
        },
    )
    assert bad.status_code == 400
    assert bad.context["form"].errors["language"]
    assert not MediaFile.objects.exists()


def test_unfunded_transcription_keeps_no_upload(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    response = transcribe(
        client_for(alpha.member, alpha.workspace), django_capture_on_commit_callbacks, wav_bytes(seconds=2)
    )
    assert response.status_code == 400
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


@pytest.mark.outsider("media:speech", "media:transcribe", "media:transcript_download")
def test_outsider_sees_nothing_and_gets_404(
    alpha: Team,
    beta: Team,
    audio_models: dict[str, AIModel],
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    fund(alpha.workspace)
    member = client_for(alpha.member, alpha.workspace)
    speak(member, django_capture_on_commit_callbacks)
    transcribe(member, django_capture_on_commit_callbacks, wav_bytes(seconds=2))
    speech_job = GenerationJob.objects.get(kind=JobKind.SPEECH)
    transcription_job = GenerationJob.objects.get(kind=JobKind.TRANSCRIPTION)
    outsider = client_for(beta.owner, beta.workspace)
    speech = outsider.get("/studio/speech/")
    assert speech.status_code == 200
    assert b'data-testid="speech-item"' not in speech.content
    transcripts = outsider.get("/studio/transcribe/")
    assert b'data-testid="transcript-item"' not in transcripts.content
    assert outsider.get(f"/studio/speech/?job={speech_job.pk}").status_code == 404
    assert outsider.get(f"/studio/transcribe/?job={transcription_job.pk}").status_code == 404
    assert outsider.get(f"/studio/transcribe/{transcription_job.pk}/text/").status_code == 404
    assert outsider.get(f"/studio/jobs/{speech_job.pk}/").status_code == 404
    # A job of the other kind is not shown on the wrong page either.
    assert member.get(f"/studio/speech/?job={transcription_job.pk}").status_code == 404
    assert member.get(f"/studio/transcribe/{speech_job.pk}/text/").status_code == 404


def test_cancel_returns_to_the_kind_page(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    form = {"model": "mock-tts", "voice": "alloy", "speed": "1", "format": "mp3", "text": "Wait.", "nonce": "c"}
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/studio/speech/", form)
    job = GenerationJob.objects.get()
    response = client.post(f"/studio/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    assert response["Location"].endswith(f"/studio/speech/?job={job.pk}")


def test_resubmitted_transcription_form_makes_one_job_and_keeps_one_upload(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    first = transcribe(client, django_capture_on_commit_callbacks, wav_bytes(seconds=2), nonce="same")
    again = transcribe(client, django_capture_on_commit_callbacks, wav_bytes(seconds=2), nonce="same")
    assert first["Location"] == again["Location"]
    job = GenerationJob.objects.get()
    assert MediaFile.objects.filter(kind=MediaKind.UPLOAD).count() == 1
    assert MediaFile.objects.get(kind=MediaKind.UPLOAD).job_id == job.pk
    assert Reservation.objects.filter(workspace=alpha.workspace).count() == 1


# ------------------------------------------------------------------------------ voices by name


def _voices_listed(html: str) -> list[str]:
    return re.findall(r'data-testid="speech-voice">([^<]*)<', html)


def test_speech_history_names_each_voice_instead_of_its_id(
    alpha: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    voice = Voice.objects.create(
        workspace=alpha.workspace,
        name="Narrator Ada",
        provider_voice_id="cloned_ada_123",
        consent_at=timezone.now(),
        consent_text="Mine.",
    )
    client = client_for(alpha.member, alpha.workspace)
    speak(client, django_capture_on_commit_callbacks, nonce="c1", voice="cloned_ada_123")
    speak(client, django_capture_on_commit_callbacks, nonce="s1")  # alloy, a stock voice

    html = client.get("/studio/speech/").content.decode()

    assert _voices_listed(html) == ["Alloy", "Narrator Ada"]  # newest first
    history = html.split("<h2>Recent speech</h2>")[1]
    assert "cloned_ada_123" not in history
    # The name is kept with the file: renamed, the history follows; deleted, it still names it.
    stored = MediaFile.objects.get(kind=MediaKind.AUDIO, metadata__voice="cloned_ada_123")
    assert stored.metadata["voice_name"] == "Narrator Ada"
    Voice.objects.filter(pk=voice.pk).update(name="Ada, calm")
    assert _voices_listed(client.get("/studio/speech/").content.decode()) == ["Alloy", "Ada, calm"]
    voice.delete()
    assert _voices_listed(client.get("/studio/speech/").content.decode()) == ["Alloy", "Narrator Ada"]


def test_another_workspaces_voice_name_is_never_shown(
    alpha: Team, beta: Team, audio_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    Voice.objects.create(
        workspace=beta.workspace,
        name="Beta secret voice",
        provider_voice_id="shared_id",
        consent_at=timezone.now(),
        consent_text="Mine.",
    )
    client = client_for(alpha.member, alpha.workspace)
    speak(client, django_capture_on_commit_callbacks, nonce="s1")
    MediaFile.objects.filter(kind=MediaKind.AUDIO).update(metadata={"voice": "shared_id", "text": "hi"})

    html = client.get("/studio/speech/").content.decode()

    assert "Beta secret voice" not in html
    assert _voices_listed(html) == ["shared_id"]

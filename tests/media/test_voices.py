"""Voice cloning: the `voice_clone` kind (consent, samples checked by content, charged once),
the voices page (clone, rename, delete; audited, workspace-scoped) and cloned voices in speech."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.credits.models import CreditAccount
from apps.credits.rates import credits_quote
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed, voice_catalog_seed
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, Voice
from apps.media.services import job_create, voice_cloning_allowed, voice_delete, voice_rename
from apps.media.storage import audio_upload_create
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.fakes.audio import wav_bytes
from tests.media.conftest import FUNDS, fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def voice_models(image_model: AIModel) -> dict[str, AIModel]:
    audio_catalog_seed(Provider, AIModel)
    voice_catalog_seed(Provider, AIModel)
    return {m.model_id: m for m in AIModel.objects.select_related("provider").filter(model_id__startswith="mock-")}


def sample(team: Team, data: bytes | None = None) -> int:
    upload = audio_upload_create(
        workspace_id=team.workspace.pk, file=io.BytesIO(data or wav_bytes(2)), filename="me.wav"
    )
    return upload.pk


def clone(team: Team, model: AIModel, key: str = "v1", **params: Any) -> GenerationJob:
    parameters = {"name": "My voice", "samples": [sample(team)], "consent": True, **params}
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.VOICE_CLONE,
        model=model,
        parameters=parameters,
        idempotency_key=key,
    )


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


def cloned_voice(team: Team, models: dict[str, AIModel], capture: Any, key: str = "v1") -> Voice:
    fund(team.workspace)
    with capture(execute=True):
        job = clone(team, models["mock-voice"], key=key)
    run_job.apply(args=[job.pk])
    return Voice.objects.get(job=job)


def test_clone_is_charged_once_when_the_task_runs_twice(
    alpha: Team, voice_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = clone(alpha, voice_models["mock-voice"])
    run_job.apply(args=[job.pk])
    run_job.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    quote = credits_quote(service="voice_clone", model="mock-voice", items=1)
    assert quote.units > 0
    assert job.credits_charged_units == quote.units
    assert available(alpha) == FUNDS - quote.units
    voice = Voice.objects.get(workspace=alpha.workspace)
    assert voice.provider_voice_id.startswith("mock-voice-")
    assert voice.created_by == alpha.member
    assert voice.consent_at is not None
    assert voice.consent_text
    assert voice_cloning_allowed(alpha.workspace) is True


def test_consent_is_required(alpha: Team, voice_models: dict[str, AIModel]) -> None:
    fund(alpha.workspace)
    for consent in (False, None, "yes"):
        with pytest.raises(MediaError) as exc:
            clone(alpha, voice_models["mock-voice"], consent=consent)
        assert exc.value.status_code == 400
        assert exc.value.message == "You must confirm you have the right to clone this voice."
    assert not GenerationJob.objects.exists()


def test_a_sample_that_is_not_audio_is_refused(alpha: Team, voice_models: dict[str, AIModel]) -> None:
    with pytest.raises(MediaError) as exc:
        sample(alpha, b"this is not audio at all" * 20)
    assert exc.value.status_code == 400
    with pytest.raises(MediaError) as exc:
        clone(alpha, voice_models["mock-voice"], samples=[999999])
    assert exc.value.status_code == 400


def test_another_workspace_cannot_use_the_samples(alpha: Team, beta: Team, voice_models: dict[str, AIModel]) -> None:
    fund(beta.workspace)
    with pytest.raises(MediaError) as exc:
        clone(beta, voice_models["mock-voice"], samples=[sample(alpha)])
    assert exc.value.status_code == 400


def test_rename_and_delete_are_audited(
    alpha: Team, voice_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    voice = cloned_voice(alpha, voice_models, django_capture_on_commit_callbacks)
    voice_rename(voice=voice, name="Narrator", acting_user=alpha.owner)
    voice.refresh_from_db()
    assert voice.name == "Narrator"
    with pytest.raises(MediaError):
        voice_rename(voice=voice, name="  ", acting_user=alpha.owner)
    voice_delete(voice=voice, acting_user=alpha.owner)
    assert not Voice.objects.filter(pk=voice.pk).exists()
    actions = set(AuditEvent.objects.filter(actor=alpha.owner).values_list("action", flat=True))
    assert {"media.voice_rename", "media.voice_delete"} <= actions


def test_speech_with_another_workspaces_voice_is_refused(
    alpha: Team, beta: Team, voice_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    voice = cloned_voice(alpha, voice_models, django_capture_on_commit_callbacks)
    fund(beta.workspace, key="beta")

    def speak(team: Team, key: str) -> GenerationJob:
        return job_create(
            workspace=team.workspace,
            user=team.member,
            kind=JobKind.SPEECH,
            model=voice_models["mock-tts"],
            parameters={"text": "Hello.", "voice": voice.provider_voice_id},
            idempotency_key=key,
        )

    with pytest.raises(MediaError) as exc:
        speak(beta, "s-beta")
    assert exc.value.status_code == 400
    assert exc.value.param == "voice"
    assert speak(alpha, "s-alpha").parameters["voice"] == voice.provider_voice_id


def test_voices_page_clones_renames_and_deletes(
    alpha: Team, voice_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    page = client.get("/studio/voices/")
    assert page.status_code == 200
    assert b'data-testid="voice-form"' in page.content
    form = {"model": "mock-voice", "name": "Studio voice", "nonce": "n1"}
    refused = client.post("/studio/voices/", {**form, "samples": [SimpleUploadedFile("a.wav", wav_bytes(2))]})
    assert refused.status_code == 400
    assert b"You must confirm you have the right to clone this voice." in refused.content
    bad = client.post(
        "/studio/voices/", {**form, "consent": "on", "samples": [SimpleUploadedFile("a.wav", b"not audio" * 50)]}
    )
    assert bad.status_code == 400
    assert not GenerationJob.objects.exists()
    files = [SimpleUploadedFile("a.wav", wav_bytes(2)), SimpleUploadedFile("b.wav", wav_bytes(2))]
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/studio/voices/", {**form, "consent": "on", "samples": files})
    assert created.status_code == 302
    voice = Voice.objects.get(workspace=alpha.workspace)
    listing = client.get("/studio/voices/")
    assert voice.provider_voice_id.encode() in listing.content
    assert client.post(f"/studio/voices/{voice.pk}/rename/", {"name": "Renamed"}).status_code == 302
    voice.refresh_from_db()
    assert voice.name == "Renamed"
    assert client.post(f"/studio/voices/{voice.pk}/delete/").status_code == 302
    assert not Voice.objects.exists()


def test_outsider_gets_404_on_voice_actions(
    alpha: Team, beta: Team, voice_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    voice = cloned_voice(alpha, voice_models, django_capture_on_commit_callbacks)
    client = client_for(beta.member, beta.workspace)
    assert client.post(f"/studio/voices/{voice.pk}/rename/", {"name": "Mine"}).status_code == 404
    assert client.post(f"/studio/voices/{voice.pk}/delete/").status_code == 404
    assert voice.provider_voice_id.encode() not in client.get("/studio/voices/").content
    voice.refresh_from_db()
    assert voice.name == "My voice"

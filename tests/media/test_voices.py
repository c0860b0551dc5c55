"""Voice cloning: the `voice_clone` kind (consent, samples checked by content, charged once),
the voices page (clone, rename, delete; audited, workspace-scoped) and cloned voices in speech."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.credits.models import CreditAccount
from apps.credits.rates import credits_quote, rate_card_publish
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed, voice_catalog_seed
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, Voice
from apps.media.services import job_create, voice_cloning_allowed, voice_delete, voice_rename
from apps.media.storage import audio_upload_create
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.fakes.audio import wav_bytes
from tests.fakes.upstream import FakeUpstream
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
    run_job.apply(args=(job.pk,))
    return Voice.objects.get(job=job)


def test_clone_is_charged_once_when_the_task_runs_twice(
    alpha: Team, voice_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = clone(alpha, voice_models["mock-voice"])
    run_job.apply(args=(job.pk,))
    run_job.apply(args=(job.pk,))
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
    assert voice_cloning_allowed(alpha.workspace) is True  # no plans: open


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


@pytest.mark.outsider("media:voices", "media:voice_rename", "media:voice_delete")
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


# ------------------------------------------------------------------------------ voice picker


def test_speech_picker_offers_stock_voices_and_only_the_workspaces_own_clones(
    alpha: Team, beta: Team, voice_models: dict[str, AIModel], client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    voice = cloned_voice(alpha, voice_models, django_capture_on_commit_callbacks)
    fund(beta.workspace, key="beta")
    own = client_for(alpha.member, alpha.workspace).get("/studio/speech/")
    assert b'<option value="alloy"' in own.content
    assert f'<option value="{voice.provider_voice_id}"'.encode() in own.content
    assert b"Your cloned voices" in own.content
    other = client_for(beta.member, beta.workspace)
    page = other.get("/studio/speech/")
    assert b'<option value="alloy"' in page.content
    assert voice.provider_voice_id.encode() not in page.content
    form = {"model": "mock-tts", "voice": voice.provider_voice_id, "speed": "1", "format": "mp3", "text": "Hi."}
    refused = other.post("/studio/speech/", {**form, "nonce": "b1"})
    assert refused.status_code == 400
    assert refused.context["form"].errors["voice"] == ["Pick one of the listed voices."]
    assert not GenerationJob.objects.filter(workspace=beta.workspace).exists()
    mine = client_for(alpha.member, alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        created = mine.post("/studio/speech/", {**form, "nonce": "a1"})
    assert created.status_code == 302
    job = GenerationJob.objects.get(workspace=alpha.workspace, kind=JobKind.SPEECH)
    assert (job.status, job.parameters["voice"]) == (JobStatus.SUCCEEDED, voice.provider_voice_id)


def test_elevenlabs_picker_lists_its_premade_voices(
    alpha: Team, voice_models: dict[str, AIModel], client_for: Any, upstream: FakeUpstream
) -> None:
    elevenlabs_models(upstream)
    page = client_for(alpha.member, alpha.workspace).get("/studio/speech/")
    assert b"ElevenLabs voices" in page.content
    assert b'<option value="21m00Tcm4TlvDq8ikWAM">Rachel</option>' in page.content


# ------------------------------------------------------------------------------ ElevenLabs jobs


def elevenlabs_models(upstream: FakeUpstream) -> dict[str, AIModel]:
    """An ElevenLabs provider on the fake upstream, with a cloning and a speech model, priced."""
    provider = Provider(name="ElevenLabs", kind="elevenlabs", base_url=upstream.base_url, timeout_seconds=5)
    provider.set_api_key("xi-test")
    provider.save()
    common = {"provider": provider, "supports_chat": False, "upstream_model": "eleven_multilingual_v2"}
    clone_model = AIModel.objects.create(
        model_id="eleven-clone", display_name="ElevenLabs cloning", supports_voice_cloning=True, **common
    )
    speech_model = AIModel.objects.create(
        model_id="eleven-tts", display_name="ElevenLabs speech", supports_speech=True, **common
    )
    rate_card_publish(service="voice_clone", model="eleven-clone", acting_user=None, per_unit="10")
    rate_card_publish(service="speech", model="eleven-tts", acting_user=None, per_1k_characters="3")
    return {"clone": clone_model, "speech": speech_model}


def test_elevenlabs_clone_job_end_to_end_then_speech_with_the_voice(
    alpha: Team,
    voice_models: dict[str, AIModel],
    upstream: FakeUpstream,
    django_capture_on_commit_callbacks: Any,
) -> None:
    models = elevenlabs_models(upstream)
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = clone(alpha, models["clone"], key="eleven-clone")
    run_job.apply(args=(job.pk,))  # a second delivery: nothing more happens
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    adds = [r for r in upstream.requests if r["path"] == "/v1/voices/add"]
    assert len(adds) == 1
    assert adds[0]["headers"]["xi-api-key"] == "xi-test"
    assert adds[0]["fields"]["name"] == "My voice"
    assert [f["field"] for f in adds[0]["files"]] == ["files"]
    voice = Voice.objects.get(workspace=alpha.workspace)
    assert voice.provider_voice_id in upstream.voices
    assert voice.model == models["clone"]
    clone_units = credits_quote(service="voice_clone", model="eleven-clone", items=1).units
    assert job.credits_charged_units == clone_units > 0
    assert available(alpha) == FUNDS - clone_units

    text = "Hello from my own voice."
    with django_capture_on_commit_callbacks(execute=True):
        speech = job_create(
            workspace=alpha.workspace,
            user=alpha.member,
            kind=JobKind.SPEECH,
            model=models["speech"],
            parameters={"text": text, "voice": voice.provider_voice_id},
            idempotency_key="eleven-speech",
        )
    speech.refresh_from_db()
    assert speech.status == JobStatus.SUCCEEDED, speech.error
    [spoken] = [r for r in upstream.requests if r["path"].startswith("/v1/text-to-speech/")]
    assert spoken["path"] == f"/v1/text-to-speech/{voice.provider_voice_id}"
    assert spoken["body"] == {"text": text, "model_id": "eleven_multilingual_v2"}
    audio = MediaFile.objects.get(job=speech)
    assert audio.content_type == "audio/mpeg"
    assert audio.duration is not None
    speech_units = credits_quote(service="speech", model="eleven-tts", characters=len(text)).units
    assert available(alpha) == FUNDS - clone_units - speech_units

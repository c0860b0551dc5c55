"""What the workspace's plan allows in media — voice cloning (Professional and up), the largest
audio upload, the storage quota and the models — on the service, the studio pages and
`/api/v1/jobs/`; with no plans at all everything stays open."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind, Voice
from apps.media.selectors import workspace_storage_used
from apps.media.services import job_create, voice_cloning_allowed
from apps.media.storage import audio_upload_create
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.fakes.audio import wav_bytes
from tests.media.conftest import fund, on_plan

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
IMAGE = {"prompt": "a lighthouse", "size": "256x256"}


def create(team: Team, model: AIModel, kind: str, parameters: dict[str, Any], key: str = "p1") -> GenerationJob:
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=kind,
        model=model,
        parameters=parameters,
        idempotency_key=key,
    )


def clone_parameters(team: Team) -> dict[str, Any]:
    sample = audio_upload_create(workspace_id=team.workspace.pk, file=io.BytesIO(wav_bytes(2)), filename="me.wav")
    return {"name": "My voice", "samples": [sample.pk], "consent": True}


def wav(name: str = "a.wav", seconds: float = 2) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, wav_bytes(seconds), content_type="audio/wav")


def too_big_for_free() -> SimpleUploadedFile:
    # Over the Free plan's 10 MB and under the site's 25 MB: the size is checked before the content.
    return SimpleUploadedFile("big.wav", wav_bytes(1)[:44] + b"\0" * (10 * MB), content_type="audio/wav")


# ------------------------------------------------------------------------------ voice cloning


def test_free_plan_cannot_clone_voices_on_the_service_page_or_api(
    alpha: Team, media_models: dict[str, AIModel], plans: None, client_for: Any
) -> None:
    fund(alpha.workspace)
    assert voice_cloning_allowed(alpha.workspace) is False
    with pytest.raises(MediaError) as exc:
        create(alpha, media_models["mock-voice"], JobKind.VOICE_CLONE, clone_parameters(alpha))
    assert (exc.value.status_code, exc.value.code) == (403, "plan_upgrade_required")
    assert "Free plan" in exc.value.message
    assert "Professional plan and higher plans include it" in exc.value.message
    client = client_for(alpha.member, alpha.workspace)
    page = client.get("/studio/voices/")
    assert page.status_code == 200
    assert b'data-testid="voice-upgrade"' in page.content
    assert b'href="/billing/pricing/"' in page.content
    gate = page.content.decode().split('data-testid="voice-upgrade"')[1].split("</article>")[0]
    assert "(/billing/pricing/)" not in gate  # the plans are a link, not a path printed in the text
    assert ">See the plans</a>" in gate
    assert b'data-testid="voice-form"' not in page.content
    form = {"model": "mock-voice", "name": "Mine", "consent": "on", "nonce": "v1", "samples": [wav()]}
    refused = client.post("/studio/voices/", form)
    assert refused.status_code == 400
    assert b"Professional plan" in refused.content
    assert b"(/billing/pricing/)" not in refused.content
    api = client.post(
        "/api/v1/jobs/",
        {
            "kind": "voice_clone",
            "model": "mock-voice",
            "parameters": json.dumps({"name": "Mine", "consent": True}),
            "samples": [wav()],
        },
    )
    assert api.status_code == 403
    assert "Professional plan" in api.json()["detail"]
    assert api.json()["upgrade_url"] == "/billing/pricing/"  # where to act on it, beside the message
    assert not GenerationJob.objects.exists()
    assert MediaFile.objects.count() == 1  # the sample of the service call only: refused uploads are not kept


def test_professional_plan_clones_voices(
    alpha: Team, media_models: dict[str, AIModel], plans: None, django_capture_on_commit_callbacks: Any
) -> None:
    on_plan(alpha.workspace, "professional")
    fund(alpha.workspace)
    assert voice_cloning_allowed(alpha.workspace) is True
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, media_models["mock-voice"], JobKind.VOICE_CLONE, clone_parameters(alpha))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Voice.objects.filter(workspace=alpha.workspace, job=job).exists()


def test_without_plans_voice_cloning_is_open(alpha: Team, media_models: dict[str, AIModel]) -> None:
    fund(alpha.workspace)
    assert voice_cloning_allowed(alpha.workspace) is True
    assert create(alpha, media_models["mock-voice"], JobKind.VOICE_CLONE, clone_parameters(alpha)).pk


# ------------------------------------------------------------------------------ upload limit


def test_free_plan_upload_limit_is_413_on_the_studio_and_api(
    alpha: Team, media_models: dict[str, AIModel], plans: None, client_for: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    studio = client.post("/studio/transcribe/", {"model": "mock-whisper", "format": "text", "file": too_big_for_free()})
    assert studio.status_code == 400
    [message] = studio.context["form"].errors["file"]
    assert "too large" in message
    assert "the Free plan's limit is 10 MB" in message
    api = client.post("/api/v1/jobs/", {"kind": "transcription", "model": "mock-whisper", "file": too_big_for_free()})
    assert api.status_code == 413
    assert "the Free plan's limit is 10 MB" in api.json()["detail"]
    on_plan(alpha.workspace, "professional")  # voice samples are limited the same way (25 MB)
    too_big = SimpleUploadedFile("big.wav", wav_bytes(1)[:44] + b"\0" * (25 * MB), content_type="audio/wav")
    samples = {"kind": "voice_clone", "model": "mock-voice", "parameters": json.dumps({"name": "V", "consent": True})}
    clone = client.post("/api/v1/jobs/", {**samples, "samples": [wav(), too_big]})
    assert clone.status_code == 413
    assert "the Professional plan's limit is 25 MB" in clone.json()["detail"]
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()  # the first, valid sample is not kept either


def test_without_plans_the_site_limit_applies(alpha: Team, media_models: dict[str, AIModel], client_for: Any) -> None:
    fund(alpha.workspace)
    response = client_for(alpha.member, alpha.workspace).post(
        "/api/v1/jobs/", {"kind": "transcription", "model": "mock-whisper", "file": too_big_for_free()}
    )
    assert response.status_code == 202, response.content  # over 10 MB, under the site's 25 MB
    assert response.json()["parameters"]["duration"] == "1.000"


# ------------------------------------------------------------------------------ storage quota


def stored(team: Team, size: int, kind: str = MediaKind.IMAGE) -> MediaFile:
    """A file row of `size` bytes (its bytes are not needed to count the storage used)."""
    return MediaFile.objects.create(
        workspace=team.workspace, kind=kind, file=f"ws/{team.workspace.pk}/x.png", content_type="image/png", size=size
    )


def test_full_storage_refuses_new_jobs_everywhere(
    alpha: Team, media_models: dict[str, AIModel], plans: None, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    stored(alpha, 500 * MB - 1)
    stored(alpha, 5 * MB, kind=MediaKind.UPLOAD)  # an upload no job took yet does not count
    assert workspace_storage_used(workspace=alpha.workspace) == 500 * MB - 1
    with django_capture_on_commit_callbacks(execute=False):
        assert create(alpha, media_models["mock-image"], JobKind.IMAGE, IMAGE).pk  # 1 byte left: allowed
    stored(alpha, 1)
    with pytest.raises(MediaError) as exc:
        create(alpha, media_models["mock-image"], JobKind.IMAGE, IMAGE, key="p2")
    assert (exc.value.status_code, exc.value.code) == (403, "storage_full")
    assert "storage is full: 500.0 MB used of the 500 MB included in the Free plan" in exc.value.message
    client = client_for(alpha.member, alpha.workspace)
    form = {"model": "mock-tts", "voice": "alloy", "speed": "1", "format": "mp3", "text": "Hello.", "nonce": "s"}
    page = client.post("/studio/speech/", form)
    assert page.status_code == 400
    assert b"storage is full" in page.content
    assert b"(/billing/pricing/)" not in page.content
    assert b'<a href="/billing/pricing/">See the plans</a>' in page.content.split(b'data-testid="upgrade-link"')[1]
    api = client.post("/api/v1/jobs/", {"kind": "transcription", "model": "mock-whisper", "file": wav()})
    assert api.status_code == 403
    assert "storage is full" in api.json()["detail"]
    assert GenerationJob.objects.count() == 1
    on_plan(alpha.workspace, "professional")  # 50 GB
    assert create(alpha, media_models["mock-image"], JobKind.IMAGE, IMAGE, key="p3").pk


# ------------------------------------------------------------------------------ models


def test_a_model_of_other_plans_is_refused_with_403(
    alpha: Team, beta: Team, media_models: dict[str, AIModel], plans: None
) -> None:
    AIModel.objects.filter(model_id="mock-tts").update(plans=["professional", "enterprise"])
    model = AIModel.objects.select_related("provider").get(model_id="mock-tts")
    on_plan(beta.workspace, "professional")
    fund(alpha.workspace)
    fund(beta.workspace, key="beta")
    speech = {"text": "Hello.", "voice": "alloy"}
    with pytest.raises(MediaError) as exc:
        create(alpha, model, JobKind.SPEECH, speech)
    assert exc.value.status_code == 403
    assert "Your plan does not include `mock-tts`" in exc.value.message
    assert create(beta, model, JobKind.SPEECH, speech, key="p-beta").status == JobStatus.QUEUED


def test_replayed_key_returns_the_job_even_when_the_plan_changed(
    alpha: Team, media_models: dict[str, AIModel], plans: None, django_capture_on_commit_callbacks: Any
) -> None:
    on_plan(alpha.workspace, "professional")
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, media_models["mock-voice"], JobKind.VOICE_CLONE, clone_parameters(alpha), key="same")
    on_plan(alpha.workspace, "free")
    again = create(alpha, media_models["mock-voice"], JobKind.VOICE_CLONE, {}, key="same")
    assert again.pk == job.pk
    run_job.apply(args=(job.pk,))  # finished: nothing happens
    assert GenerationJob.objects.count() == 1

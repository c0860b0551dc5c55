"""`/api/v1/jobs/`: create (JSON, or multipart with the audio of a transcription or voice
clone), list (paginated, filtered), retrieve with result URLs, cancel; another workspace's job
is 404."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobStatus, MediaFile, MediaKind, Voice
from tests.api.conftest import make_key
from tests.conftest import Team
from tests.fakes.audio import wav_bytes
from tests.media.conftest import fund

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


BODY = {"kind": "image", "model": "mock-image", "parameters": {"prompt": "a boat", "size": "256x256"}}


def test_session_creates_and_retrieves_a_job(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/jobs/", BODY, content_type="application/json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    detail = client.get(f"/api/v1/jobs/{job_id}/").json()
    assert detail["status"] == "succeeded"
    assert detail["progress"] == 100
    assert detail["credits_charged"] == detail["credits_reserved"]
    [result] = detail["results"]
    assert (result["width"], result["height"]) == (256, 256)
    assert result["thumbnail_url"]
    assert result["preview_url"]
    download = client.get(result["url"])
    assert download.status_code == 200


def test_key_creates_lists_and_filters(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert (
                client.post("/api/v1/jobs/", BODY, content_type="application/json", headers=bearer(raw)).status_code
                == 202
            )
    listing = client.get("/api/v1/jobs/?kind=image&status=succeeded&page_size=2", headers=bearer(raw)).json()
    assert listing["count"] == 3
    assert len(listing["results"]) == 2
    assert client.get("/api/v1/jobs/?status=failed", headers=bearer(raw)).json()["count"] == 0
    assert client.get("/api/v1/jobs/?status=bogus", headers=bearer(raw)).status_code == 400


def test_key_needs_images_scope_to_create(alpha: Team, image_model: AIModel) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["platform_read", "platform_write"])
    response = Client().post("/api/v1/jobs/", BODY, content_type="application/json", headers=bearer(raw))
    assert response.status_code == 403
    assert not GenerationJob.objects.exists()


def test_invalid_parameters_are_400_with_param(alpha: Team, image_model: AIModel, client_for: Any) -> None:
    fund(alpha.workspace)
    body = {**BODY, "parameters": {"prompt": "x", "size": "3x3"}}
    response = client_for(alpha.member, alpha.workspace).post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["param"] == "size"


def test_insufficient_credits_is_402(alpha: Team, image_model: AIModel, client_for: Any) -> None:
    response = client_for(alpha.member, alpha.workspace).post("/api/v1/jobs/", BODY, content_type="application/json")
    assert response.status_code == 402


def test_cancel_then_cancel_again(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job_id = client.post("/api/v1/jobs/", BODY, content_type="application/json").json()["id"]
    response = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == JobStatus.CANCELLED
    again = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


@pytest.mark.outsider("api:jobs", "api:job", "api:job_cancel")
def test_outsider_gets_404(
    alpha: Team, beta: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job_id = (
            client_for(alpha.member, alpha.workspace)
            .post("/api/v1/jobs/", BODY, content_type="application/json")
            .json()["id"]
        )
    outsider = client_for(beta.owner, beta.workspace)
    assert outsider.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert outsider.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert outsider.get("/api/v1/jobs/").json()["count"] == 0
    _, raw = make_key(beta)
    assert Client().get(f"/api/v1/jobs/{job_id}/", headers=bearer(raw)).status_code == 404
    assert GenerationJob.objects.get(pk=job_id).status == JobStatus.QUEUED


def test_anonymous_is_refused() -> None:
    assert Client().get("/api/v1/jobs/").status_code in (401, 403)


# ------------------------------------------------------------------------------ multipart uploads


def multipart(raw: str, capture: Any, data: dict[str, Any]) -> Any:
    with capture(execute=True):
        return Client().post("/api/v1/jobs/", data, headers=bearer(raw))  # a dict body is sent as multipart


def test_key_uploads_audio_for_a_transcription_and_polls_it(
    alpha: Team, beta: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    response = multipart(
        raw,
        django_capture_on_commit_callbacks,
        {
            "kind": "transcription",
            "model": "mock-whisper",
            "parameters": json.dumps({"language": "en", "format": "srt"}),
            "idempotency_key": "upload-1",
            "file": SimpleUploadedFile("talk.mp3", wav_bytes(3), content_type="audio/mpeg"),
        },
    )
    assert response.status_code == 202, response.content
    created = response.json()
    assert created["kind"] == "transcription"
    assert created["parameters"]["duration"] == "3.000"  # measured from the file, not its name
    upload = MediaFile.objects.get(kind=MediaKind.UPLOAD)
    assert upload.job_id == created["id"]
    detail = Client().get(f"/api/v1/jobs/{created['id']}/", headers=bearer(raw)).json()
    assert detail["status"] == "succeeded"
    [transcript] = [r for r in detail["results"] if r["kind"] == "transcript"]
    assert transcript["content_type"].startswith("application/x-subrip")
    _, beta_raw = make_key(beta)
    assert Client().get(f"/api/v1/jobs/{created['id']}/", headers=bearer(beta_raw)).status_code == 404


def test_key_uploads_samples_for_a_voice_clone(
    alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    samples = [SimpleUploadedFile(f"s{i}.wav", wav_bytes(2), content_type="audio/wav") for i in range(2)]
    response = multipart(
        raw,
        django_capture_on_commit_callbacks,
        {
            "kind": "voice_clone",
            "model": "mock-voice",
            "parameters": json.dumps({"name": "API voice", "consent": True}),
            "samples": samples,
        },
    )
    assert response.status_code == 202, response.content
    job = GenerationJob.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert len(job.parameters["samples"]) == 2
    assert MediaFile.objects.filter(job=job, kind=MediaKind.UPLOAD).count() == 2
    assert Voice.objects.get(job=job).name == "API voice"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        ({"file": b"this is not audio at all" * 10}, 400, "not a supported audio format"),
        ({"samples": b"RIFF"}, 400, "`file` field"),
        ({}, 400, "`file` field"),
        ({"file": b"RIFF", "parameters": "[1, 2]"}, 400, "JSON object"),
        ({"file": b"RIFF", "parameters": "{not json"}, 400, "JSON"),
    ],
    ids=["not-audio", "wrong-field", "no-file", "parameters-not-object", "parameters-not-json"],
)
def test_bad_uploads_are_refused_and_nothing_is_kept(
    alpha: Team, media_models: dict[str, AIModel], data: dict[str, Any], status: int, words: str
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    body: dict[str, Any] = {"kind": "transcription", "model": "mock-whisper"}
    for name, value in data.items():
        body[name] = SimpleUploadedFile("a.wav", value) if isinstance(value, bytes) else value
    response = Client().post("/api/v1/jobs/", body, headers=bearer(raw))
    assert response.status_code == status, response.content
    assert words in json.dumps(response.json())
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


def test_upload_needs_the_audio_scope_and_an_upload_kind(alpha: Team, media_models: dict[str, AIModel]) -> None:
    fund(alpha.workspace)
    _, images_only = make_key(alpha, scopes=["images", "platform_read", "platform_write"])
    audio = {"kind": "transcription", "model": "mock-whisper", "file": SimpleUploadedFile("a.wav", wav_bytes(1))}
    assert Client().post("/api/v1/jobs/", audio, headers=bearer(images_only)).status_code == 403
    _, raw = make_key(alpha)
    image = {"kind": "image", "model": "mock-image", "file": SimpleUploadedFile("a.wav", wav_bytes(1))}
    assert Client().post("/api/v1/jobs/", image, headers=bearer(raw)).status_code == 400
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


def test_replayed_upload_returns_the_same_job_and_keeps_one_file(
    alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)

    def send() -> Any:
        return multipart(
            raw,
            django_capture_on_commit_callbacks,
            {
                "kind": "transcription",
                "model": "mock-whisper",
                "idempotency_key": "same",
                "file": SimpleUploadedFile("a.wav", wav_bytes(1)),
            },
        )

    first, again = send(), send()
    assert first.json()["id"] == again.json()["id"]
    assert GenerationJob.objects.count() == 1
    assert MediaFile.objects.filter(kind=MediaKind.UPLOAD).count() == 1


# ------------------------------------------------------------------------------ download links' life


def link_life(url: str) -> float:
    from apps.media.storage import download_token_read

    payload = download_token_read(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1])
    assert payload is not None
    return payload["e"] - time.time()


def test_a_key_chooses_how_long_its_bearer_links_live(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.media import storage

    fund(alpha.workspace)
    _, raw = make_key(alpha)
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client.post("/api/v1/jobs/", BODY, content_type="application/json", headers=bearer(raw)).json()["id"]
    [default] = client.get(f"/api/v1/jobs/{job_id}/", headers=bearer(raw)).json()["results"]
    assert 295 < link_life(default["url"]) <= 300
    [short] = client.get(f"/api/v1/jobs/{job_id}/?link_ttl=20", headers=bearer(raw)).json()["results"]
    for name in ("url", "download_url", "preview_url", "thumbnail_url"):
        assert 15 < link_life(short[name]) <= 20
    # A bearer capability: whoever holds it downloads the file, without a key or a session...
    assert Client().get(short["url"]).status_code == 200
    # ...until it expires.
    real_time = time.time
    monkeypatch.setattr(storage, "time", SimpleNamespace(time=lambda: real_time() + 21))
    assert Client().get(short["url"]).status_code == 404
    assert Client().get(default["url"]).status_code == 200


@pytest.mark.parametrize("ttl", ["9", "0", "-1", "301", "soon", "1.5"])
def test_link_life_out_of_bounds_is_400(alpha: Team, image_model: AIModel, ttl: str) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    client = Client()
    created = client.post(f"/api/v1/jobs/?link_ttl={ttl}", BODY, content_type="application/json", headers=bearer(raw))
    assert created.status_code == 400
    assert (created.json()["param"], created.json()["code"]) == ("link_ttl", "invalid_value")
    assert not GenerationJob.objects.exists()
    job = GenerationJob.objects.create(
        workspace=alpha.workspace, kind="image", model=image_model, model_label="mock-image", idempotency_key="ttl"
    )
    detail = client.get(f"/api/v1/jobs/{job.pk}/?link_ttl={ttl}", headers=bearer(raw))
    assert (detail.status_code, detail.json()["param"]) == (400, "link_ttl")

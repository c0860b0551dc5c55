"""The hourly `cleanup_media` task: results (and uploads) past the plan's retention are deleted
with their stored bytes and their jobs shown as expired; stored objects no row names are swept
from local storage and from S3 (moto_server) after a grace period. Running it again changes
nothing."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobKind, MediaFile
from apps.media.services import job_create, media_cleanup, media_storage_sweep
from apps.media.storage import audio_upload_create, stored_media_files
from apps.media.tasks import cleanup_media
from tests.conftest import Team
from tests.fakes.audio import wav_bytes
from tests.media.conftest import fund, image_job, on_plan

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - timedelta(days=31)


def transcription_job(team: Team, model: AIModel, capture: Any, key: str, *, run: bool = True) -> GenerationJob:
    upload = audio_upload_create(workspace_id=team.workspace.pk, file=io.BytesIO(wav_bytes(1)), filename="a.wav")
    with capture(execute=run):
        job = job_create(
            workspace=team.workspace,
            user=team.member,
            kind=JobKind.TRANSCRIPTION,
            model=model,
            parameters={"upload": upload.pk, "format": "text"},
            idempotency_key=key,
        )
    job.refresh_from_db()
    return job


def files_of(*jobs: GenerationJob) -> list[MediaFile]:
    return list(MediaFile.objects.filter(job__in=jobs))


def age(*jobs: GenerationJob) -> None:
    MediaFile.objects.filter(job__in=jobs).update(created_at=LONG_AGO)


def test_results_past_the_plans_retention_expire(
    alpha: Team,
    beta: Team,
    media_models: dict[str, AIModel],
    plans: None,
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    fund(alpha.workspace)
    fund(beta.workspace, key="beta")
    on_plan(beta.workspace, "professional")  # keeps results
    old_image = image_job(alpha, media_models["mock-image"], capture, "old-image")
    old_transcript = transcription_job(alpha, media_models["mock-whisper"], capture, "old-text")
    waiting = transcription_job(alpha, media_models["mock-whisper"], capture, "waiting", run=False)
    recent = image_job(alpha, media_models["mock-image"], capture, "recent")
    kept = image_job(beta, media_models["mock-image"], capture, "beta-image")
    age(old_image, old_transcript, waiting, kept)
    gone = files_of(old_image, old_transcript)
    assert len(gone) == 5  # image + preview + thumbnail; upload + transcript
    assert all(default_storage.exists(f.file.name) for f in gone)

    counts = cleanup_media.apply().get()

    assert counts["retention"] == 3  # originals; their previews go with them
    assert not MediaFile.objects.filter(pk__in=[f.pk for f in gone]).exists()
    assert not any(default_storage.exists(f.file.name) for f in gone)
    assert len(files_of(waiting)) == 1  # a queued job keeps its upload
    assert len(files_of(recent)) == 3
    assert len(files_of(kept)) == 3
    old_image.refresh_from_db()
    old_transcript.refresh_from_db()
    assert old_image.results_expired_at is not None
    assert old_transcript.results_expired_at is not None
    assert GenerationJob.objects.filter(results_expired_at__isnull=False).count() == 2

    client = client_for(alpha.member, alpha.workspace)
    detail = client.get(f"/api/v1/jobs/{old_image.pk}/").json()
    assert (detail["results_expired"], detail["results"]) == (True, [])
    assert client.get(f"/api/v1/jobs/{recent.pk}/").json()["results_expired"] is False
    assert client.get(f"/studio/jobs/{old_image.pk}/").json()["results_expired"] is True
    page = client.get(f"/studio/images/?job={old_image.pk}")
    assert b'data-testid="results-expired"' in page.content
    assert b'data-testid="media-result"' not in page.content
    transcript_page = client.get(f"/studio/transcribe/?job={old_transcript.pk}")
    assert b'data-testid="results-expired"' in transcript_page.content
    assert client.get(f"/studio/transcribe/{old_transcript.pk}/text/").status_code == 404

    expired_at = old_image.results_expired_at
    again = media_cleanup()
    assert again == {"expired": 0, "retention": 0, "orphaned": 0, "stored_orphans": 0}
    old_image.refresh_from_db()
    assert old_image.results_expired_at == expired_at


def test_without_plans_results_are_kept(
    alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    job = image_job(alpha, media_models["mock-image"], django_capture_on_commit_callbacks, "kept")
    age(job)
    assert media_cleanup()["retention"] == 0
    assert len(files_of(job)) == 3


def test_files_past_expires_at_are_deleted_and_their_job_expired(
    alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    job = image_job(alpha, media_models["mock-image"], django_capture_on_commit_callbacks, "dated")
    rows = files_of(job)
    MediaFile.objects.filter(job=job).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert media_cleanup()["expired"] == 1
    assert not any(default_storage.exists(f.file.name) for f in rows)
    job.refresh_from_db()
    assert job.results_expired_at is not None


# ------------------------------------------------------------------------------ stored orphans


def put(name: str, data: bytes = b"orphan") -> str:
    return default_storage.save(name, ContentFile(data))


def make_old(*names: str) -> None:
    then = time.time() - 2 * 3600
    for name in names:
        os.utime(default_storage.path(name), (then, then))


def test_local_sweep_deletes_old_files_no_row_names(
    alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    job = image_job(alpha, media_models["mock-image"], django_capture_on_commit_callbacks, "referenced")
    referenced = [f.file.name for f in files_of(job)]
    orphan = put(f"ws/{alpha.workspace.pk}/2026/01/crashed.png")
    fresh = put(f"ws/{alpha.workspace.pk}/2026/01/being-saved.png")  # its row may be about to be written
    outside = put("avatars/2026/01/face.png")  # not a media file
    make_old(orphan, outside, *referenced)

    assert media_cleanup()["stored_orphans"] == 1

    assert not default_storage.exists(orphan)
    assert all(default_storage.exists(name) for name in [fresh, outside, *referenced])
    assert media_cleanup()["stored_orphans"] == 0


def test_s3_sweep_deletes_files_no_row_names(
    s3: str, alpha: Team, media_models: dict[str, AIModel], django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    job = image_job(alpha, media_models["mock-image"], django_capture_on_commit_callbacks, "s3-referenced")
    referenced = [f.file.name for f in files_of(job)]
    orphan = put(f"ws/{alpha.workspace.pk}/2026/01/crashed.png")
    outside = put("avatars/face.png")
    assert media_storage_sweep() == 0  # everything is younger than the hour of grace
    # moto cannot date an object back: move the cut-off forward instead.
    assert media_storage_sweep(older_than=timedelta(minutes=-1)) == 1
    assert not default_storage.exists(orphan)
    assert all(default_storage.exists(name) for name in [outside, *referenced])


def test_s3_listing_follows_the_pages(s3: str) -> None:
    names = {put(f"ws/1/2026/01/file-{i}.bin") for i in range(5)}
    put("other/not-media.bin")
    future = timezone.now() + timedelta(minutes=1)
    assert set(stored_media_files(modified_before=future, page_size=2)) == names
    assert list(stored_media_files(modified_before=timezone.now() - timedelta(minutes=1))) == []

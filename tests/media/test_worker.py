"""A real Celery worker (in a thread of this process) on the Redis broker: the happy path and
the crash paths, with the same database the test writes to; speech and transcription with their
files on S3 (moto_server), fetched back through presigned URLs. Needs REDIS_URL (CI sets it)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote
from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_create, job_create_with_uploads, job_sweep_stale
from apps.media.storage import media_file_url
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.fakes.audio import wav_bytes
from tests.media.conftest import FUNDS, REDIS_URL, fund, reservation_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not REDIS_URL, reason="a real Celery worker needs a Redis broker: set REDIS_URL"),
]


@pytest.fixture
def worker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], AbstractContextManager[Any]]]:
    """`with worker(): ...` runs a Celery worker consuming this test's own queue (parallel test
    processes share the broker, not the database)."""
    from celery.contrib.testing.worker import start_worker

    from aikeedo.celery import app

    queue = f"media-test-{uuid.uuid4().hex[:12]}"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setattr(run_job, "queue", queue, raising=False)
    monkeypatch.setattr(run_job, "_exec_options", None)  # Celery caches the routing options

    def start() -> AbstractContextManager[Any]:
        return start_worker(
            app, pool="solo", concurrency=1, perform_ping_check=False, queues=[queue], shutdown_timeout=20
        )

    yield start
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue)  # type: ignore[attr-defined]  # kombu-stubs lack default_channel


def wait_finished(job: GenerationJob, timeout: float = 30) -> GenerationJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job.pk} still {job.status} after {timeout} s")


def create(team: Team, model: AIModel, key: str) -> GenerationJob:
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.IMAGE,
        model=model,
        parameters={"prompt": "worker", "size": "256x256", "n": 2},
        idempotency_key=key,
    )


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


def test_worker_runs_the_job_and_charges_once(alpha: Team, image_model: AIModel, worker: Any) -> None:
    fund(alpha.workspace)
    with worker():
        job = wait_finished(create(alpha, image_model, "w-happy"))
        assert job.status == JobStatus.SUCCEEDED, job.error
        run_job.delay(job.pk).get(timeout=20)  # a second delivery: nothing happens
    job.refresh_from_db()
    assert job.attempts == 1
    assert MediaFile.objects.filter(job=job, kind=MediaKind.IMAGE).count() == 2
    assert available(alpha) == FUNDS - job.credits_charged_units > 0
    assert reservation_of(job).status == Reservation.Status.SETTLED
    assert_ledger_consistent()


def test_message_redelivered_after_a_worker_crash_finishes_the_job_once(
    alpha: Team, image_model: AIModel, worker: Any
) -> None:
    fund(alpha.workspace)
    job = create(alpha, image_model, "w-crash")  # the message waits in the queue: no worker yet
    # A worker claimed it and died (acks_late: the broker hands the message out again).
    old = timezone.now() - timedelta(minutes=10)
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    with worker():
        job = wait_finished(job)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert available(alpha) == FUNDS - job.credits_charged_units
    assert_ledger_consistent()


def test_sweeper_requeues_a_dead_workers_job_and_fails_it_after_max_attempts(
    alpha: Team, image_model: AIModel, worker: Any
) -> None:
    from aikeedo.celery import app

    fund(alpha.workspace)
    retried = create(alpha, image_model, "w-retry")
    given_up = create(alpha, image_model, "w-give-up")
    with app.connection_for_write() as connection:  # the dead worker took the messages with it
        # kombu-stubs lack `default_channel`; `run_job.queue` is set by the `worker` fixture.
        connection.default_channel.queue_purge(run_job.queue)  # type: ignore[attr-defined]
    old = timezone.now() - timedelta(minutes=10)
    GenerationJob.objects.filter(pk=retried.pk).update(status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    GenerationJob.objects.filter(pk=given_up.pk).update(status=JobStatus.RUNNING, attempts=3, heartbeat_at=old)
    with worker():
        assert job_sweep_stale(older_than=timedelta(minutes=2), max_attempts=3) == {"requeued": 1, "failed": 1}
        retried = wait_finished(retried)
    given_up.refresh_from_db()
    assert (retried.status, retried.attempts) == (JobStatus.SUCCEEDED, 2)
    assert given_up.status == JobStatus.FAILED
    assert reservation_of(given_up).status == Reservation.Status.RELEASED
    assert available(alpha) == FUNDS - retried.credits_charged_units
    assert_ledger_consistent()


# ------------------------------------------------------------------------------ audio on S3


def presigned_bytes(media_file: MediaFile) -> bytes:
    url = media_file_url(media_file, ttl=60, download=True)
    assert "Signature=" in url or "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_worker_runs_speech_on_s3(s3: str, alpha: Team, media_models: dict[str, AIModel], worker: Any) -> None:
    fund(alpha.workspace)
    text = "Spoken by a real worker."
    with worker():
        job = job_create(
            workspace=alpha.workspace,
            user=alpha.member,
            kind=JobKind.SPEECH,
            model=media_models["mock-tts"],
            parameters={"text": text, "voice": "nova", "format": "wav"},
            idempotency_key="w-speech",
        )
        job = wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    audio = MediaFile.objects.get(job=job, kind=MediaKind.AUDIO)
    data = presigned_bytes(audio)
    assert data[:4] == b"RIFF"
    assert data == audio.file.open("rb").read()
    assert len(data) == audio.size
    assert job.credits_charged_units == credits_quote(service="speech", model="mock-tts", characters=len(text)).units
    assert available(alpha) == FUNDS - job.credits_charged_units
    assert_ledger_consistent()


def test_worker_runs_a_transcription_of_an_s3_upload(
    s3: str, alpha: Team, media_models: dict[str, AIModel], worker: Any
) -> None:
    fund(alpha.workspace)
    with worker():
        job = job_create_with_uploads(
            workspace=alpha.workspace,
            user=alpha.member,
            kind=JobKind.TRANSCRIPTION,
            model=media_models["mock-whisper"],
            files=[SimpleUploadedFile("talk.wav", wav_bytes(2.5))],
            parameters={"format": "vtt"},
            idempotency_key="w-transcription",
        )
        job = wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    upload = MediaFile.objects.get(job=job, kind=MediaKind.UPLOAD)
    assert presigned_bytes(upload) == wav_bytes(2.5)
    transcript = MediaFile.objects.get(job=job, kind=MediaKind.TRANSCRIPT)
    text = presigned_bytes(transcript)
    assert text.startswith(b"WEBVTT")
    assert text == transcript.file.open("rb").read()
    seconds = credits_quote(service="transcription", model="mock-whisper", audio_seconds=3).units
    assert job.credits_charged_units == seconds
    assert available(alpha) == FUNDS - seconds
    assert_ledger_consistent()

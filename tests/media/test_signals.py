"""What media announces (apps/media/signals.py): `job_completed` once, on commit, when a job
finishes successfully; never for a job that failed, nor for a success that was rolled back."""

from __future__ import annotations

from typing import Any

import pytest

from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobKind, JobStatus
from apps.media.services import job_create, job_run
from apps.media.signals import job_completed
from tests.conftest import Team
from tests.events import listening, rolled_back
from tests.media.conftest import fund, set_mock_options

pytestmark = pytest.mark.django_db


def create(team: Team, model: AIModel, key: str = "k1") -> GenerationJob:
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.IMAGE,
        model=model,
        parameters={"prompt": "a red fox in the snow", "size": "256x256"},
        idempotency_key=key,
    )


def test_a_successful_job_is_announced_once_on_commit(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model)  # queued: its task is not run

    with listening(job_completed) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            job_run(job_id=job.pk)
            job_run(job_id=job.pk)  # run again: finished, left alone
        assert heard.of(job_completed) == []
        for callback in callbacks:
            callback()

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    fields = ("pk", "workspace_id", "kind", "user_id", "api_key_id", "credits_charged_units")
    assert heard.rows(job_completed, "job", *fields) == [
        (job.pk, alpha.workspace.pk, JobKind.IMAGE, alpha.member.pk, None, job.credits_charged_units)
    ]
    assert job.credits_charged_units > 0
    assert heard.senders(job_completed) == [GenerationJob]


def test_a_failed_job_is_not_announced(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    set_mock_options(fail="before:400")

    with listening(job_completed) as heard, django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert heard.of(job_completed) == []


def test_a_success_rolled_back_is_not_announced(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model)

    with listening(job_completed) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: job_run(job_id=job.pk))

    assert heard.of(job_completed) == []
    assert GenerationJob.objects.get(pk=job.pk).status == JobStatus.QUEUED

"""The jobs framework with the image kind on the mock provider: charged exactly once at the
quoted rate, safe to run twice, crash → retried or failed-and-released, cancel releases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote
from apps.credits.services import credits_release, credits_settle
from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_cancel, job_create, job_run, job_sweep_stale
from apps.media.tasks import run_job
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.media.conftest import FUNDS, fund, reservation_of, set_mock_options

pytestmark = pytest.mark.django_db


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


def create(team: Team, model: AIModel, key: str = "k1", **params: Any) -> GenerationJob:
    parameters = {"prompt": "a red fox in the snow", "size": "512x512", "n": 2, **params}
    return job_create(
        workspace=team.workspace,
        user=team.member,
        kind=JobKind.IMAGE,
        model=model,
        parameters=parameters,
        idempotency_key=key,
    )


def test_image_job_charged_once_per_image_at_quoted_rate(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    quote = credits_quote(service="image", model="mock-image", images=1, size="512x512", quality="standard")
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.progress == 100
    assert job.credits_reserved_units == 2 * quote.units
    assert job.credits_charged_units == 2 * quote.units
    assert available(alpha) == FUNDS - 2 * quote.units
    reservation = reservation_of(job)
    assert reservation.status == Reservation.Status.SETTLED
    assert reservation.charged_units == 2 * quote.units
    assert reservation.usage == {"images": 2}
    originals = MediaFile.objects.filter(job=job, kind=MediaKind.IMAGE).order_by("id")
    assert [(f.width, f.height, f.content_type) for f in originals] == [(512, 512, "image/png")] * 2
    assert originals[0].metadata["prompt"] == "a red fox in the snow"
    assert originals[0].file.read(8) == b"\x89PNG\r\n\x1a\n"
    for original in originals:
        kinds = {d.kind: d for d in original.derivatives.all()}
        assert set(kinds) == {MediaKind.PREVIEW, MediaKind.THUMBNAIL}
        assert max(kinds[MediaKind.THUMBNAIL].width or 0, kinds[MediaKind.THUMBNAIL].height or 0) == 256
        assert kinds[MediaKind.PREVIEW].content_type == "image/webp"
        assert original.file.name.startswith(f"ws/{alpha.workspace.pk}/")
    assert_ledger_consistent()


def test_mock_images_are_deterministic(alpha: Team, image_model: AIModel) -> None:
    from apps.generation.providers.images import generate_images

    first = generate_images(image_model.target(), prompt="x", size="256x256", quality="hd", style="vivid", n=1)
    again = generate_images(image_model.target(), prompt="x", size="256x256", quality="hd", style="vivid", n=1)
    other = generate_images(image_model.target(), prompt="y", size="256x256", quality="hd", style="vivid", n=1)
    assert first.images == again.images != other.images


def test_task_run_twice_charges_once(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    run_job.apply(args=(job.pk,))
    run_job.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert MediaFile.objects.filter(job=job, kind=MediaKind.IMAGE).count() == 1
    assert available(alpha) == FUNDS - job.credits_charged_units
    assert_ledger_consistent()


def test_replayed_idempotency_key_returns_the_same_job(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model, key="same")
        again = create(alpha, image_model, key="same")
    assert again.pk == job.pk
    assert Reservation.objects.count() == 1
    assert_ledger_consistent()


def claimed_and_abandoned(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any, attempts: int = 1
) -> GenerationJob:
    """A job a worker claimed and then died on: running, old heartbeat, no task running."""
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    old = timezone.now() - timedelta(minutes=10)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=attempts, heartbeat_at=old, started_at=old, progress=10
    )
    return job


def test_crashed_worker_job_is_retried_by_the_sweeper(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    job = claimed_and_abandoned(alpha, image_model, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        counts = job_sweep_stale(older_than=timedelta(minutes=2))
    assert counts == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED  # eager: the re-queued job ran
    assert job.attempts == 2
    assert reservation_of(job).status == Reservation.Status.SETTLED
    assert available(alpha) == FUNDS - job.credits_charged_units
    # The dead worker's message is redelivered (acks_late) after all: nothing changes.
    run_job.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.attempts == 2
    assert available(alpha) == FUNDS - job.credits_charged_units
    assert_ledger_consistent()


def test_redelivered_message_takes_over_a_stale_running_job(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    job = claimed_and_abandoned(alpha, image_model, django_capture_on_commit_callbacks)
    run_job.apply(args=(job.pk,))
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert_ledger_consistent()


def test_crashed_worker_after_max_attempts_fails_and_releases(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    job = claimed_and_abandoned(alpha, image_model, django_capture_on_commit_callbacks, attempts=3)
    with django_capture_on_commit_callbacks(execute=True):
        counts = job_sweep_stale(older_than=timedelta(minutes=2), max_attempts=3)
    assert counts == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "interrupted" in job.error
    reservation = reservation_of(job)
    assert (reservation.status, reservation.charged_units) == (Reservation.Status.RELEASED, 0)
    assert available(alpha) == FUNDS
    # A late settle (the "dead" worker comes back) changes nothing.
    credits_settle(reservation=reservation, actual_units=100)
    assert available(alpha) == FUNDS
    # Nor does the redelivered message: the job is finished.
    assert job_run(job_id=job.pk) is None
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_queued_job_no_worker_took_is_requeued_then_failed(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1), attempts=2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert job_sweep_stale(queued_older_than=timedelta(minutes=5), max_attempts=3) == {"requeued": 1, "failed": 0}
    assert len(callbacks) >= 1
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert job_sweep_stale(queued_older_than=timedelta(minutes=5), max_attempts=3) == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_transient_provider_error_is_retried_then_fails_and_releases(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    set_mock_options(fail="before:503")
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model, n=1)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 3  # MEDIA_JOB_MAX_ATTEMPTS: the first run and two retries
    assert "503" in job.error
    assert reservation_of(job).status == Reservation.Status.RELEASED
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_permanent_provider_error_fails_at_once(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    set_mock_options(fail="before:400")
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model, n=1)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert available(alpha) == FUNDS
    assert not MediaFile.objects.filter(job=job).exists()


def test_cancel_releases_the_hold_and_the_task_then_does_nothing(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    assert available(alpha) < FUNDS
    job_cancel(job=job, acting_user=alpha.member)
    assert available(alpha) == FUNDS
    assert reservation_of(job).status == Reservation.Status.RELEASED
    assert AuditEvent.objects.filter(action="media.job_cancel", actor=alpha.member).exists()
    run_job.apply(args=(job.pk,))  # the queued message arrives after the cancel
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not MediaFile.objects.filter(job=job).exists()
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_cancel_while_running_stops_at_the_next_checkpoint(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.generation.providers import images

    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    real = images.generate_images

    def cancel_midway(*args: Any, **kwargs: Any) -> Any:
        job_cancel(job=GenerationJob.objects.get(pk=job.pk), acting_user=alpha.member)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "generate_images", cancel_midway)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not MediaFile.objects.filter(job=job).exists()  # what it made was discarded
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_cancel_of_a_finished_job_is_refused(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        job = create(alpha, image_model, n=1)
    job.refresh_from_db()
    charged = available(alpha)
    with pytest.raises(MediaError, match="already succeeded") as exc:
        job_cancel(job=job, acting_user=alpha.member)
    assert exc.value.status_code == 409
    assert available(alpha) == charged


def test_settle_after_release_changes_nothing(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = create(alpha, image_model, n=1)
    reservation = reservation_of(job)
    credits_release(reservation=reservation)
    # The hold ended behind the job's back (the credits sweeper): the job is failed, not run free.
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert credits_settle(reservation=reservation, actual_units=5).status == Reservation.Status.RELEASED
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"prompt": ""}, "prompt", "Write a prompt"),
        ({"prompt": "x" * 4001}, "prompt", "too long"),
        ({"size": "999x999"}, "size", "Invalid size"),
        ({"quality": "ultra"}, "quality", "Invalid quality"),
        ({"n": 5}, "n", "between 1 and 4"),
        ({"n": "2"}, "n", "whole number"),
        ({"colour": "red"}, "colour", "Unknown parameter"),
    ],
)
def test_invalid_parameters_are_refused_clearly(
    alpha: Team, image_model: AIModel, params: dict[str, Any], param: str, message: str
) -> None:
    fund(alpha.workspace)
    with pytest.raises(MediaError, match=message) as exc:
        create(alpha, image_model, **params)
    assert (exc.value.status_code, exc.value.param) == (400, param)
    assert not GenerationJob.objects.exists()
    assert not Reservation.objects.exists()


def test_dalle3_allows_one_image_and_no_negative_prompt(alpha: Team, image_model: AIModel) -> None:
    from apps.generation.models import Provider

    provider = Provider.objects.get(kind="openai")
    provider.enabled = True
    provider.set_api_key("sk-test")
    provider.save()
    dalle3 = AIModel.objects.select_related("provider").get(model_id="dall-e-3")
    fund(alpha.workspace)
    with pytest.raises(MediaError, match="between 1 and 1"):
        create(alpha, dalle3, size="1024x1024", n=2)
    with pytest.raises(MediaError, match="negative prompt"):
        create(alpha, dalle3, size="1024x1024", n=1, negative_prompt="blurry")


def test_chat_model_is_refused_for_images(alpha: Team, image_model: AIModel) -> None:
    fund(alpha.workspace)
    with pytest.raises(MediaError, match="does not support image generation"):
        create(alpha, AIModel.objects.get(model_id="mock-chat"))


def test_insufficient_credits_creates_nothing(alpha: Team, image_model: AIModel) -> None:
    with pytest.raises(InsufficientCredits):
        create(alpha, image_model)
    assert not GenerationJob.objects.exists()


# ---------------------------------------------------------------------------- the usage log


def test_finished_jobs_are_on_the_usage_log_once_with_their_charge(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.generation.models import Generation
    from apps.generation.signals import generation_completed
    from tests.events import listening

    fund(alpha.workspace)
    with listening(generation_completed) as heard, django_capture_on_commit_callbacks(execute=True):
        done = create(alpha, image_model, n=1)
    run_job.apply(args=(done.pk,))  # redelivered: the job is finished, nothing is logged again
    set_mock_options(fail="before:400")
    with django_capture_on_commit_callbacks(execute=True):
        failed = create(alpha, image_model, n=1, key="failed")
    with django_capture_on_commit_callbacks(execute=False):
        cancelled = create(alpha, image_model, n=1, key="cancelled")
    job_cancel(job=cancelled, acting_user=alpha.member)

    done.refresh_from_db()
    rows = {
        row.reference: (row.capability, row.outcome, row.credits_charged_units, row.model_label, row.user_id)
        for row in Generation.objects.filter(workspace=alpha.workspace)
    }
    assert rows == {
        f"media_job:{done.pk}": ("images", "ok", done.credits_charged_units, "mock-image", alpha.member.pk),
        f"media_job:{failed.pk}": ("images", "error", 0, "mock-image", alpha.member.pk),
        f"media_job:{cancelled.pk}": ("images", "stopped", 0, "mock-image", alpha.member.pk),
    }
    assert done.credits_charged_units > 0
    assert heard.rows(generation_completed, "generation", "outcome", "credits_charged_units") == [
        ("ok", done.credits_charged_units)
    ]

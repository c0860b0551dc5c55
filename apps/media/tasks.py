"""Thin Celery tasks of the media jobs: ids in, one service call.

`run_job` is safe to deliver twice (acks_late: a worker that dies mid-job gets the message
redelivered): the claim in `job_run` lets only one delivery run the job, and a finished job is
left alone, so it is never charged twice.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from apps.media.services import RetryLater

MAX_RETRIES = 3


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=10 * 60,
    time_limit=11 * 60,
)
def run_job(self: Any, job_id: int) -> str | None:
    """Run one media job. A transient provider error re-queues the job and retries the task
    with exponential backoff (and jitter); the last retry fails the job and releases its hold.

    Retries are explicit rather than `autoretry_for`: run eagerly (tests, no broker) a Celery
    retry raises instead of running again, so there the retries run in this loop, without
    waiting."""
    from apps.media.services import job_run

    retries = self.request.retries or 0
    while True:
        try:
            job = job_run(job_id=job_id, final_attempt=retries >= MAX_RETRIES)
        except RetryLater as exc:
            if self.request.is_eager:
                retries += 1
                continue
            countdown = get_exponential_backoff_interval(factor=2, retries=retries, maximum=60, full_jitter=True)
            raise self.retry(exc=exc, countdown=countdown) from exc
        return job.status if job is not None else None


@shared_task
def sweep_stale_jobs() -> dict[str, int]:
    """Every minute: re-queue (or fail and release) jobs whose worker died or that no worker took."""
    from apps.media.services import job_sweep_stale

    return job_sweep_stale()


@shared_task
def cleanup_media() -> dict[str, int]:
    """Every hour: delete expired files, results past the plan's retention, uploads no job
    took, and stored objects no file row names (see `media_cleanup`)."""
    from apps.media.services import media_cleanup

    return media_cleanup()

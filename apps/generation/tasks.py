"""Thin Celery tasks: ids in, one service call. Scheduled in `CELERY_BEAT_SCHEDULE`."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task


@shared_task
def sweep_interrupted() -> dict[str, int]:
    """Every minute: close the usage rows of generations whose worker died (after the credits
    sweep has ended their holds)."""
    from constance import config

    from apps.generation.services import generation_sweep

    older_than = timedelta(minutes=int(config.RESERVATION_MAX_AGE_MINUTES))
    return {"generations": generation_sweep(older_than=older_than)}

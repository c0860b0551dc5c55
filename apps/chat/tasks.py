"""Thin Celery tasks: ids in, one service call. Scheduled in `CELERY_BEAT_SCHEDULE`."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task


@shared_task
def sweep_interrupted() -> dict[str, int]:
    """Every minute: end the chat answers whose worker died, once the engine's sweep
    (`apps.generation.tasks.sweep_interrupted`) has closed their usage rows."""
    from constance import config

    from apps.chat.services import chat_sweep_interrupted

    older_than = timedelta(minutes=int(config.RESERVATION_MAX_AGE_MINUTES))
    return {"messages": chat_sweep_interrupted(older_than=older_than)}


@shared_task
def purge_unsent_attachments() -> dict[str, int]:
    """Every hour: delete files attached to a composer and never sent (after a week)."""
    from apps.chat.services import chat_attachments_purge_unsent

    return {"attachments": chat_attachments_purge_unsent()}

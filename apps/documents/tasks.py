"""Thin Celery tasks: ids in, one service call. Scheduled in `CELERY_BEAT_SCHEDULE`."""

from __future__ import annotations

from celery import shared_task


@shared_task
def purge_trash() -> dict[str, int]:
    """Every hour: delete the documents in the trash for 30 days, with their history."""
    from apps.documents.services import documents_purge_trash

    return {"documents": documents_purge_trash()}

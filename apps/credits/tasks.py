"""Thin Celery tasks: ids in, one service call. Scheduled in `CELERY_BEAT_SCHEDULE`."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_low_balance_alert(account_id: int, threshold_units: int, base_url: str = "") -> int:
    """Enqueued on commit when a charge crosses an alert level, with the base URL of the request
    that caused it (the email's link points there unless SITE_URL is set). Retried on
    mail-server errors (smtplib's are OSError). Returns the number of emails sent."""
    from apps.credits.notifications import low_balance_notify

    return low_balance_notify(account_id=account_id, threshold_units=threshold_units, base_url=base_url)


@shared_task
def sweep_stale_reservations() -> dict[str, int]:
    """Every minute: end holds whose caller died (settle what it checkpointed, release the rest)."""
    from constance import config

    from apps.credits.services import credits_sweep

    return credits_sweep(older_than=timedelta(minutes=int(config.RESERVATION_MAX_AGE_MINUTES)))


@shared_task
def expire_grants() -> int:
    """Every five minutes: remove the credits of grants past their expiry. Returns units expired."""
    from apps.credits.services import credits_expire

    return credits_expire()

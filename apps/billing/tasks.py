"""Thin Celery tasks: ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def process_event(event_id: int, base_url: str = "") -> None:
    """`base_url`: the address the webhook was delivered to, for the links of the emails the
    event causes (receipts, payment failures) when SITE_URL is not set."""
    from apps.billing.fulfilment import djstripe_mirror, event_process
    from apps.core.sites import base_url_scope

    with base_url_scope(base_url):
        event = event_process(event_id=event_id)
        djstripe_mirror(event)


@shared_task(ignore_result=True)
def retry_failed_events() -> int:
    from apps.billing.fulfilment import events_retry_due

    return events_retry_due()


@shared_task(ignore_result=True)
def billing_daily() -> dict[str, Any]:
    """Hourly upkeep: monthly credits of yearly plans and of plans not billed through Stripe,
    overdue restrictions, expired time-limited plans, re-armed auto top-ups."""
    from apps.billing.fulfilment import subscription_grant_months
    from apps.billing.services import billing_plan_expire, billing_plan_monthly_credits, billing_restrict_overdue
    from apps.billing.topup import topup_rearm_all

    return {
        "yearly_months": subscription_grant_months(),
        "restricted": billing_restrict_overdue(),
        "plans_expired": billing_plan_expire(),
        "plan_monthly_credits": billing_plan_monthly_credits(),
        "topups_rearmed": topup_rearm_all(),
    }


@shared_task(acks_late=True, ignore_result=True)
def auto_topup(workspace_id: int) -> None:
    from apps.billing.topup import billing_auto_topup

    billing_auto_topup(workspace_id=workspace_id)

"""What billing does when another domain announces something: each receiver enqueues one task
or calls one service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.dispatch import receiver

from apps.billing.services import billing_plan_credits_start
from apps.billing.tasks import auto_topup
from apps.billing.topup import TOPUP_WATCH
from apps.credits.signals import balance_crossed_level
from apps.workspaces.signals import workspace_created

if TYPE_CHECKING:
    from apps.credits.models import CreditAccount
    from apps.workspaces.models import Workspace


@receiver(balance_crossed_level, dispatch_uid="billing_auto_topup")
def _top_up(sender: Any, account: CreditAccount, watch: str, **kwargs: Any) -> None:
    # The ledger announces the crossing of the threshold billing pushed (`topup_settings_update`).
    if watch == TOPUP_WATCH:
        auto_topup.delay(account.workspace_id)


@receiver(workspace_created, dispatch_uid="billing_plan_credits_start")
def _first_month_credits(sender: Any, workspace: Workspace, **kwargs: Any) -> None:
    # In the workspace's own transaction, like its trial: a new workspace starts with this month's
    # credits of the default plan instead of waiting for the hourly task. It has no billing
    # account yet.
    billing_plan_credits_start(workspace=workspace, account=None)

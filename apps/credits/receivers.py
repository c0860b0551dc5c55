"""What credits does when it hears of something: each receiver calls one service or enqueues
one task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.dispatch import receiver

from apps.core.sites import current_base_url
from apps.credits.services import credits_account_start
from apps.credits.signals import LOW_BALANCE, balance_crossed_level
from apps.credits.tasks import send_low_balance_alert
from apps.workspaces.signals import workspace_created

if TYPE_CHECKING:
    from apps.credits.models import CreditAccount
    from apps.workspaces.models import Workspace


@receiver(workspace_created, dispatch_uid="credits_account_start")
def _open_account(sender: Any, workspace: Workspace, is_personal: bool, **kwargs: Any) -> None:
    # In the workspace's own transaction: a workspace never exists without its account.
    credits_account_start(workspace=workspace, trial=is_personal)


@receiver(balance_crossed_level, dispatch_uid="credits_low_balance_alert")
def _alert_low_balance(sender: Any, account: CreditAccount, watch: str, level_units: int, **kwargs: Any) -> None:
    if watch == LOW_BALANCE:
        # The email links to the address of the request (or socket) whose charge crossed the level.
        send_low_balance_alert.delay(account.pk, level_units, current_base_url())

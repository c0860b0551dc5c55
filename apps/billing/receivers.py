"""What billing does when another domain announces something: each receiver enqueues one task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.dispatch import receiver

from apps.billing.tasks import auto_topup
from apps.billing.topup import TOPUP_WATCH
from apps.credits.signals import balance_crossed_level

if TYPE_CHECKING:
    from apps.credits.models import CreditAccount


@receiver(balance_crossed_level, dispatch_uid="billing_auto_topup")
def _top_up(sender: Any, account: CreditAccount, watch: str, **kwargs: Any) -> None:
    # The ledger announces the crossing of the threshold billing pushed (`topup_settings_update`).
    if watch == TOPUP_WATCH:
        auto_topup.delay(account.workspace_id)

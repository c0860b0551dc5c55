"""Auto top-up: when a change takes the available balance below the workspace's threshold
(`AutoTopup`), charge its saved card for the chosen pack with an off-session PaymentIntent — at
most once per crossing. The threshold is pushed to the ledger as a watched level; the ledger
announces the crossing (`balance_crossed_level`) and `receivers.py` enqueues the charge. The
account is disarmed before the charge and re-armed only once the balance is back at or above
the threshold."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction

from apps.audit.services import audit_record
from apps.billing.fulfilment import account_for_workspace, object_id, topup_fulfil
from apps.billing.models import AutoTopup, BillingAccount, CreditPack, TopupAttempt
from apps.billing.services import BillingError
from apps.billing.stripe_api import payments_enabled, stripe_client, stripe_options, to_dict
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_watch_set
from apps.workspaces.roles import Perm
from apps.workspaces.services import require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

# The name of the threshold in the ledger's watched levels.
TOPUP_WATCH = "auto_topup"
# A threshold above this (10^14 credits) is a typo, and would not fit the ledger's sums.
MAX_THRESHOLD_UNITS = 10**18


@transaction.atomic
def topup_settings_update(
    *,
    workspace: Workspace,
    acting_user: User,
    enabled: bool,
    threshold_units: int | None,
    pack: CreditPack | None,
    as_staff: bool = False,
) -> AutoTopup:
    """Set the workspace's automatic top-up (needs manage_billing; `as_staff`: the back office,
    no membership needed). An enabled top-up needs a threshold and a pack that is for sale.
    The threshold goes to the ledger as a watched level in the same transaction; an audit row
    records each change from → to. Raises BillingError or WorkspacePermissionDenied."""
    if as_staff and not acting_user.is_staff:
        raise BillingError("Only staff can change another workspace's automatic top-up.")
    if not as_staff:
        require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_BILLING)
    if threshold_units is not None and not 0 < threshold_units <= MAX_THRESHOLD_UNITS:
        raise BillingError("Give a top-up threshold greater than zero (and not absurdly large).")
    if enabled and (threshold_units is None or pack is None):
        raise BillingError("Automatic top-up needs a threshold and a credit pack.")
    # Serialises two saves of the same workspace's settings: the stored row and the ledger's
    # watched level end as the same one of them.
    topup, _ = AutoTopup.objects.select_for_update().get_or_create(workspace=workspace)
    if pack is not None and pack.pk != topup.pack_id and not pack.is_active:
        raise BillingError("This credit pack is not for sale.")
    before = {"enabled": topup.enabled, "threshold_units": topup.threshold_units, "pack": _code(topup.pack)}
    after = {"enabled": enabled, "threshold_units": threshold_units, "pack": _code(pack)}
    changes = {name: {"from": before[name], "to": value} for name, value in after.items() if before[name] != value}
    if not changes:
        return topup
    topup.enabled, topup.threshold_units, topup.pack = enabled, threshold_units, pack
    topup.save()
    credits_watch_set(workspace=workspace, watch=TOPUP_WATCH, level_units=threshold_units if enabled else None)
    audit_record(
        actor=acting_user,
        action="billing.auto_topup_update",
        target=topup,
        workspace=workspace,
        metadata={"changes": changes, **({"via": "admin"} if as_staff else {})},
    )
    return topup


def _code(pack: CreditPack | None) -> str:
    return pack.code if pack is not None else ""


def _payment_method(customer: str) -> str:
    client = stripe_client()
    data = to_dict(client.v1.customers.retrieve(customer))
    default = object_id((data.get("invoice_settings") or {}).get("default_payment_method"))
    if default:
        return default
    methods = to_dict(client.v1.payment_methods.list(params={"customer": customer, "type": "card", "limit": 1}))
    found = methods.get("data") or []
    return str(found[0]["id"]) if found else ""


def billing_auto_topup(*, workspace_id: int) -> TopupAttempt | None:
    """Charge one top-up if the workspace is armed and below its threshold. Returns the
    attempt (None when nothing was due)."""
    if not payments_enabled():
        return None
    topup = AutoTopup.objects.select_related("workspace", "pack").filter(workspace_id=workspace_id).first()
    if topup is None or not topup.enabled:
        return None
    threshold, pack = topup.threshold_units, topup.pack
    if threshold is None or pack is None or not pack.is_active:
        return None
    workspace = topup.workspace
    # Durable, like the one after the charge: the Stripe call runs between two transactions of
    # this task, never inside a caller's.
    with transaction.atomic(durable=True):
        # One crossing, one charge: two tasks for the same crossing serialise here and the
        # second finds the account disarmed.
        account = account_for_workspace(workspace_id, lock=True)
        if not account.topup_armed or not account.stripe_customer_id:
            return None
        if credits_balance(workspace=workspace).available_units >= threshold:
            return None
        number = TopupAttempt.objects.filter(workspace_id=workspace_id).count() + 1
        attempt = TopupAttempt.objects.create(
            workspace=workspace, pack=pack, idempotency_key=f"topup:{workspace_id}:{number}"
        )
        account.topup_armed = False
        account.save(update_fields=["topup_armed", "updated_at"])
    metadata = {
        "workspace_id": str(workspace_id),
        "kind": "topup",
        "pack": pack.code,
        "credit_units": str(pack.credit_units),
        "bonus_units": str(pack.bonus_units),
    }
    try:
        method = _payment_method(account.stripe_customer_id)
        if not method:
            raise ValueError("No saved payment method: buy a credit pack once to save a card.")
        intent = to_dict(
            stripe_client().v1.payment_intents.create(
                params={
                    "amount": pack.price_cents,
                    "currency": pack.currency,
                    "customer": account.stripe_customer_id,
                    "payment_method": method,
                    "off_session": True,
                    "confirm": True,
                    "description": f"Auto top-up: {pack.name}",
                    "metadata": metadata,
                },
                options=stripe_options(attempt.idempotency_key),  # type: ignore[arg-type]
            )
        )
    except Exception as exc:  # a declined card or an API error: recorded, not retried
        logger.warning("Auto top-up for workspace %s failed: %s", workspace_id, exc)
        attempt.status = TopupAttempt.Status.FAILED
        attempt.error = str(exc)[:2000]
        attempt.save(update_fields=["status", "error"])
        return attempt
    attempt.payment_intent_id = str(intent["id"])
    attempt.save(update_fields=["payment_intent_id"])
    if intent.get("status") == "succeeded":
        with transaction.atomic(durable=True):
            locked = account_for_workspace(workspace_id, lock=True)
            topup_fulfil(account=locked, intent=intent, event=None)
        attempt.refresh_from_db()
    return attempt


def topup_rearm_all() -> int:
    """Re-arm disarmed accounts whose balance is back at or above their threshold (after a
    failed top-up, or credits from elsewhere)."""
    rearmed = 0
    for account in BillingAccount.objects.filter(topup_armed=False).select_related("workspace"):
        topup = AutoTopup.objects.filter(workspace_id=account.workspace_id).first()
        threshold = topup.threshold_units if topup else None
        if threshold is None or credits_balance(workspace=account.workspace).available_units >= threshold:
            rearmed += BillingAccount.objects.filter(pk=account.pk, topup_armed=False).update(topup_armed=True)
    return rearmed

"""Auto top-up: when a charge takes the available balance below the workspace's threshold
(`CreditAccount.auto_topup_*`), charge its saved card for the chosen pack with an off-session
PaymentIntent — at most once per crossing. The account is disarmed before the charge and
re-armed only once the balance is back at or above the threshold."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.billing.fulfilment import account_for_workspace, object_id, topup_fulfil
from apps.billing.models import BillingAccount, CreditPack, TopupAttempt
from apps.billing.stripe_api import payments_enabled, stripe_client, stripe_options, to_dict
from apps.credits.models import CreditAccount
from apps.credits.selectors import credits_balance

logger = logging.getLogger(__name__)


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
    credit_account = CreditAccount.objects.select_related("workspace").filter(workspace_id=workspace_id).first()
    if credit_account is None or not credit_account.auto_topup_enabled:
        return None
    threshold = credit_account.auto_topup_threshold_units
    pack = CreditPack.objects.filter(code=credit_account.auto_topup_pack, is_active=True).first()
    if threshold is None or pack is None:
        return None
    workspace = credit_account.workspace
    with transaction.atomic():
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
        with transaction.atomic():
            locked = account_for_workspace(workspace_id, lock=True)
            topup_fulfil(account=locked, intent=intent, event=None)
        attempt.refresh_from_db()
    return attempt


def topup_rearm_all() -> int:
    """Re-arm disarmed accounts whose balance is back at or above their threshold (after a
    failed top-up, or credits from elsewhere)."""
    rearmed = 0
    for account in BillingAccount.objects.filter(topup_armed=False).select_related("workspace"):
        credit_account = CreditAccount.objects.filter(workspace_id=account.workspace_id).first()
        threshold = credit_account.auto_topup_threshold_units if credit_account else None
        if threshold is None or credits_balance(workspace=account.workspace).available_units >= threshold:
            rearmed += BillingAccount.objects.filter(pk=account.pk, topup_armed=False).update(topup_armed=True)
    return rearmed

"""Fulfilment from signed webhooks posted to dj-stripe's endpoint: every event type, duplicates
and shuffled order, failures and reprocessing, refunds and disputes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from apps.billing.entitlements import plan_for, workspace_entitlements
from apps.billing.fulfilment import event_process, events_retry_due, subscription_grant_months
from apps.billing.models import BillingAccount, Fulfilment, StripeEvent, SubscriptionStatus
from apps.credits.amounts import to_units
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_account_open, credits_grant, credits_reserve, credits_settle
from tests.billing.conftest import event

pytestmark = pytest.mark.django_db

CUSTOMER = "cus_alpha"


def available(workspace) -> int:  # type: ignore[no-untyped-def]
    return credits_balance(workspace=workspace).available_units


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def pack_session(
    workspace, pack, *, session_id: str = "cs_test_1", paid: bool = True, pi: str = "pi_1"
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "customer": CUSTOMER,
        "client_reference_id": str(workspace.pk),
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete",
        "amount_total": pack.price_cents,
        "currency": "usd",
        "payment_intent": pi,
        "metadata": {
            "workspace_id": str(workspace.pk),
            "kind": "pack",
            "pack": pack.code,
            "credit_units": str(pack.credit_units),
            "bonus_units": str(pack.bonus_units),
        },
    }


def subscription(
    workspace,
    plan,
    *,
    status: str = "active",
    interval: str = "month",
    sub_id: str = "sub_1",
    start: datetime | None = None,
    cancel_at_period_end: bool = False,
    trial_end: datetime | None = None,
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    start = start or timezone.now().replace(microsecond=0)
    end = start + (timedelta(days=365) if interval == "year" else timedelta(days=30))
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": CUSTOMER,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "trial_end": ts(trial_end) if trial_end else None,
        "metadata": {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": interval},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "price": {"id": plan.stripe_price_id(interval), "recurring": {"interval": interval}},
                    "current_period_start": ts(start),
                    "current_period_end": ts(end),
                }
            ],
        },
    }


def invoice(
    workspace,
    plan,
    *,
    invoice_id: str,
    start: datetime,
    interval: str = "month",
    sub_id: str = "sub_1",
    amount: int | None = None,
    reason: str = "subscription_cycle",
    pi: str = "",
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    end = start + (timedelta(days=365) if interval == "year" else timedelta(days=30))
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": CUSTOMER,
        "number": f"INV-{invoice_id}",
        "billing_reason": reason,
        "amount_paid": plan.price_cents(interval) if amount is None else amount,
        "amount_due": plan.price_cents(interval) if amount is None else amount,
        "currency": "usd",
        "hosted_invoice_url": f"https://invoice.stripe.test/{invoice_id}",
        "invoice_pdf": f"https://invoice.stripe.test/{invoice_id}.pdf",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": sub_id,
                "metadata": {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": interval},
            },
        },
        "payments": {"data": [{"payment": {"type": "payment_intent", "payment_intent": pi}}]} if pi else {"data": []},
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{invoice_id}",
                    "period": {"start": ts(start), "end": ts(end)},
                    "pricing": {"price_details": {"price": plan.stripe_price_id(interval)}},
                }
            ],
        },
    }


def test_pack_checkout_grants_purchased_and_bonus_once(alpha, catalogue, deliver):  # type: ignore[no-untyped-def]
    pack = catalogue["packs"]["medium"]
    payload = event("checkout.session.completed", pack_session(alpha.workspace, pack))
    assert deliver(payload).status_code == 200
    assert deliver(payload).status_code == 200  # redelivered
    assert available(alpha.workspace) == pack.credit_units + pack.bonus_units
    sources = sorted(CreditGrant.objects.filter(workspace=alpha.workspace).values_list("source", flat=True))
    assert sources == [Source.BONUS, Source.PURCHASED]
    assert Fulfilment.objects.filter(workspace=alpha.workspace, kind=Fulfilment.Kind.PACK).count() == 1
    assert BillingAccount.objects.get(workspace=alpha.workspace).stripe_customer_id == CUSTOMER
    stored = StripeEvent.objects.get(stripe_id=payload["id"])
    assert stored.status == StripeEvent.Status.PROCESSED
    from djstripe.models import Event, WebhookEventTrigger

    assert Event.objects.filter(id=payload["id"]).exists()
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 2

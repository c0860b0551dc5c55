"""Fulfilment from signed webhooks posted to dj-stripe's endpoint: every event type, duplicates
and shuffled order, failures and reprocessing, refunds and disputes."""

from __future__ import annotations

import logging
import random
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from apps.billing.entitlements import plan_for, workspace_entitlements
from apps.billing.fulfilment import add_months, event_process, events_retry_due, subscription_grant_months
from apps.billing.models import BillingAccount, CreditPack, Fulfilment, Plan, PlanSource, StripeEvent
from apps.billing.services import billing_restrict_overdue
from apps.credits.amounts import to_units
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_reserve, credits_settle
from apps.workspaces.models import Workspace
from tests.billing.conftest import event

pytestmark = pytest.mark.django_db

CUSTOMER = "cus_alpha"


def available(workspace: Workspace) -> int:
    return credits_balance(workspace=workspace).available_units


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def pack_session(
    workspace: Workspace, pack: CreditPack, *, session_id: str = "cs_test_1", paid: bool = True, pi: str = "pi_1"
) -> dict[str, Any]:
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
    workspace: Workspace,
    plan: Plan,
    *,
    status: str = "active",
    interval: str = "month",
    sub_id: str = "sub_1",
    start: datetime | None = None,
    cancel_at_period_end: bool = False,
    trial_end: datetime | None = None,
) -> dict[str, Any]:
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
    workspace: Workspace,
    plan: Plan,
    *,
    invoice_id: str,
    start: datetime,
    interval: str = "month",
    sub_id: str = "sub_1",
    amount: int | None = None,
    reason: str = "subscription_cycle",
    pi: str = "",
) -> dict[str, Any]:
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


def test_pack_checkout_grants_purchased_and_bonus_once(alpha, catalogue, deliver):
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
    assert [m.to for m in mail.outbox] == [[alpha.owner.email]]  # one receipt
    assert "$35.00" in mail.outbox[0].subject


def by_source(workspace: Workspace) -> dict[str, int]:
    balance = credits_balance(workspace=workspace, with_grants=True)
    totals: dict[str, int] = {}
    for grant in balance.grants:
        totals[grant.source] = totals.get(grant.source, 0) + grant.available_units
    return totals


def spend(workspace: Workspace, units: int, key: str) -> None:
    reservation = credits_reserve(workspace=workspace, units=units, idempotency_key=key)
    credits_settle(reservation=reservation, actual_units=units)


@pytest.mark.outsider("djstripe:djstripe_webhook_by_uuid")
def test_bad_signature_is_refused_and_nothing_is_fulfilled(alpha, catalogue, deliver):
    payload = event("checkout.session.completed", pack_session(alpha.workspace, catalogue["packs"]["small"]))
    assert deliver(payload, secret="whsec_wrong").status_code == 400
    assert deliver(payload, signature="").status_code == 400
    assert not StripeEvent.objects.exists()
    assert available(alpha.workspace) == 0


@pytest.mark.outsider("djstripe:djstripe_webhook_by_uuid")
def test_forged_webhooks_are_not_stored_and_logged_once_without_traceback(alpha, catalogue, deliver, caplog):
    """A flood of forged deliveries: each is refused 400, none is stored (neither our event
    nor dj-stripe's trigger row), and the log gets one WARNING line, no ERROR, no traceback."""
    from djstripe.models import WebhookEventTrigger

    payload = event("checkout.session.completed", pack_session(alpha.workspace, catalogue["packs"]["small"]))
    caplog.set_level(logging.INFO)
    for attempt in range(20):
        response = deliver(payload, secret=f"whsec_forged_{attempt}")
        assert response.status_code == 400
    assert deliver(payload, signature="t=1,v1=deadbeef").status_code == 400
    assert not WebhookEventTrigger.objects.exists()
    assert not StripeEvent.objects.exists()
    refusals = [r for r in caplog.records if "Refused a Stripe webhook" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.WARNING
    assert refusals[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A genuine delivery still goes through dj-stripe and is fulfilled.
    assert deliver(payload).status_code == 200
    assert WebhookEventTrigger.objects.count() == 1
    assert available(alpha.workspace) > 0


def test_delayed_payment_grants_on_async_payment_succeeded(alpha, catalogue, deliver):
    pack = catalogue["packs"]["small"]
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack, paid=False)))
    assert available(alpha.workspace) == 0
    deliver(event("checkout.session.async_payment_succeeded", pack_session(alpha.workspace, pack)))
    assert available(alpha.workspace) == pack.credit_units
    assert Fulfilment.objects.filter(kind=Fulfilment.Kind.PACK).count() == 1


def test_subscription_starts_plan_and_invoice_grants_period_credits(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    start = timezone.now().replace(microsecond=0)
    assert workspace_entitlements(alpha.workspace.pk).voice_cloning is False  # the free plan
    deliver(event("customer.subscription.created", subscription(alpha.workspace, pro, start=start)))
    deliver(
        event(
            "invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_1", start=start, reason="subscription_create")
        )
    )

    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert (account.plan, account.plan_source, account.subscription_status) == (pro, PlanSource.STRIPE, "active")
    assert account.current_period_end == start + timedelta(days=30)
    assert plan_for(alpha.workspace.pk) == pro
    assert workspace_entitlements(alpha.workspace.pk).voice_cloning is True
    grant = CreditGrant.objects.get(workspace=alpha.workspace, source=Source.SUBSCRIPTION)
    assert (grant.amount_units, grant.expires_at) == (pro.monthly_credit_units, start + timedelta(days=30))
    paid = Fulfilment.objects.get(key="invoice:in_1")
    assert (paid.amount_cents, paid.invoice_pdf) == (pro.price_monthly_cents, "https://invoice.stripe.test/in_1.pdf")
    assert [m.to for m in mail.outbox] == [[alpha.owner.email]]  # the receipt, to the owner only
    assert "receipt" in mail.outbox[0].subject.lower()


def test_the_receipt_links_to_the_address_stripe_reached(alpha, catalogue, deliver, settings):
    settings.SITE_URL = ""
    pro = catalogue["plans"]["professional"]
    start = timezone.now().replace(microsecond=0)

    deliver(event("customer.subscription.created", subscription(alpha.workspace, pro, start=start)))
    # The event is processed after the webhook's request (as by a worker): the address goes with it.
    deliver(
        event(
            "invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_1", start=start, reason="subscription_create")
        )
    )

    [receipt] = mail.outbox
    assert "http://testserver/billing/" in receipt.body


def test_each_paid_period_resets_subscription_credits_and_keeps_purchased(alpha, catalogue, deliver):
    pro, pack = catalogue["plans"]["professional"], catalogue["packs"]["small"]
    first = timezone.now().replace(microsecond=0) - timedelta(days=20)
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack)))
    deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_p1", start=first)))
    spend(alpha.workspace, to_units(100), "spend-1")  # taken from the subscription credits first
    assert by_source(alpha.workspace) == {
        Source.SUBSCRIPTION: pro.monthly_credit_units - to_units(100),
        Source.PURCHASED: pack.credit_units,
    }

    deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_p2", start=first + timedelta(days=30))))

    assert by_source(alpha.workspace) == {
        Source.SUBSCRIPTION: pro.monthly_credit_units,
        Source.PURCHASED: pack.credit_units,
    }
    assert available(alpha.workspace) == pro.monthly_credit_units + pack.credit_units
    # The late redelivery of the first period's invoice changes nothing.
    deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_p1", start=first)))
    assert available(alpha.workspace) == pro.monthly_credit_units + pack.credit_units


def test_yearly_plan_grants_credits_month_by_month(alpha, catalogue, deliver):
    starter = catalogue["plans"]["starter"]
    start = timezone.now().replace(microsecond=0) - timedelta(days=1)
    deliver(
        event("customer.subscription.created", subscription(alpha.workspace, starter, interval="year", start=start))
    )
    deliver(event("invoice.paid", invoice(alpha.workspace, starter, invoice_id="in_y", start=start, interval="year")))
    grant = CreditGrant.objects.get(workspace=alpha.workspace, source=Source.SUBSCRIPTION)
    assert (grant.amount_units, grant.expires_at) == (starter.monthly_credit_units, add_months(start, 1))
    assert Fulfilment.objects.get(key="invoice:in_y").amount_cents == starter.price_yearly_cents

    assert subscription_grant_months(now=start + timedelta(days=10)) == 0  # still month one
    month_two = add_months(start, 1) + timedelta(hours=1)
    assert subscription_grant_months(now=month_two) == 1
    assert subscription_grant_months(now=month_two) == 0  # once per month
    grants = CreditGrant.objects.filter(workspace=alpha.workspace, source=Source.SUBSCRIPTION).order_by("id")
    assert [g.expires_at for g in grants] == [month_two, add_months(start, 2)] or grants[1].expires_at == add_months(
        start, 2
    )
    assert by_source(alpha.workspace) == {Source.SUBSCRIPTION: starter.monthly_credit_units}


def test_trial_grants_trial_credits_once_and_no_period_credits(alpha, catalogue, deliver):
    starter = catalogue["plans"]["starter"]
    start = timezone.now().replace(microsecond=0)
    trial_end = start + timedelta(days=starter.trial_days)
    created = event(
        "customer.subscription.created",
        subscription(alpha.workspace, starter, status="trialing", start=start, trial_end=trial_end),
    )
    deliver(created)
    deliver(created)
    deliver(
        event(
            "invoice.paid",
            invoice(
                alpha.workspace, starter, invoice_id="in_trial", start=start, amount=0, reason="subscription_create"
            ),
        )
    )

    assert by_source(alpha.workspace) == {Source.TRIAL: starter.trial_credit_units}
    trial = CreditGrant.objects.get(workspace=alpha.workspace, source=Source.TRIAL)
    assert trial.expires_at == trial_end
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert (account.subscription_status, account.trial_ends_at, account.plan) == ("trialing", trial_end, starter)
    assert not mail.outbox  # nothing was paid: no receipt


def test_cancel_at_period_end_then_deletion_moves_to_the_free_plan(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    deliver(event("customer.subscription.created", subscription(alpha.workspace, pro)))
    deliver(event("customer.subscription.updated", subscription(alpha.workspace, pro, cancel_at_period_end=True)))
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert account.cancel_at_period_end
    assert account.plan == pro

    deliver(event("customer.subscription.deleted", subscription(alpha.workspace, pro, status="canceled")))

    account.refresh_from_db()
    assert (account.plan, account.plan_source, account.subscription_status) == (None, PlanSource.DEFAULT, "canceled")
    assert plan_for(alpha.workspace.pk) == catalogue["plans"]["free"]


def test_upgrade_event_changes_plan_and_stale_events_change_nothing(alpha, catalogue, deliver):
    starter, pro = catalogue["plans"]["starter"], catalogue["plans"]["professional"]
    older = event("customer.subscription.updated", subscription(alpha.workspace, starter))
    newer = event("customer.subscription.updated", subscription(alpha.workspace, pro))
    deliver(newer)
    deliver(older)  # delivered late
    assert BillingAccount.objects.get(workspace=alpha.workspace).plan == pro


def test_failed_payment_grace_then_restriction_then_recovery(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    start = timezone.now().replace(microsecond=0)
    deliver(event("customer.subscription.created", subscription(alpha.workspace, pro, start=start)))
    failed = invoice(alpha.workspace, pro, invoice_id="in_f", start=start)
    failed["attempt_count"] = 1
    deliver(event("invoice.payment_failed", failed))
    deliver(event("invoice.payment_failed", failed))  # redelivered: one email

    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert account.grace_until is not None
    assert account.grace_until > timezone.now() + timedelta(days=6)
    assert len(mail.outbox) == 1
    assert "payment failed" in mail.outbox[0].subject.lower()
    assert billing_restrict_overdue() == 0  # still in the grace period
    assert plan_for(alpha.workspace.pk) == pro

    assert billing_restrict_overdue(now=account.grace_until + timedelta(seconds=1)) == 1
    assert plan_for(alpha.workspace.pk) == catalogue["plans"]["free"]  # paid features paused

    deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_f", start=start)))
    account.refresh_from_db()
    assert (account.restricted, account.grace_until) == (False, None)
    assert plan_for(alpha.workspace.pk) == pro


def test_partial_then_full_refund_claws_back_proportionally_with_shortfall(alpha, catalogue, deliver):
    pack = catalogue["packs"]["small"]  # 500 credits for $10, no bonus
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack, pi="pi_pack")))
    spend(alpha.workspace, to_units(400), "spend")
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_pack",
        "amount": 1000,
        "amount_captured": 1000,
        "amount_refunded": 200,
        "customer": CUSTOMER,
    }

    deliver(event("charge.refunded", charge))  # 20% refunded: 100 credits back
    assert available(alpha.workspace) == 0
    deliver(event("charge.refunded", dict(charge, amount_refunded=1000)))  # the rest: 400 more, all spent
    deliver(event("charge.refunded", dict(charge, amount_refunded=1000)))  # redelivered

    refunds = Fulfilment.objects.filter(kind=Fulfilment.Kind.REFUND).order_by("id")
    assert [(r.credit_units, r.shortfall_units, r.amount_cents) for r in refunds] == [
        (-to_units(100), 0, -200),
        (-to_units(400), to_units(400), -800),
    ]
    assert available(alpha.workspace) == 0


def test_dispute_claws_back_and_a_won_dispute_restores(alpha, catalogue, deliver):
    pack = catalogue["packs"]["small"]
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack, pi="pi_d")))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "payment_intent": "pi_d",
        "charge": "ch_d",
        "amount": 1000,
        "status": "needs_response",
    }
    deliver(event("charge.dispute.created", dispute))
    deliver(event("charge.dispute.created", dispute))
    assert available(alpha.workspace) == 0
    deliver(event("charge.dispute.closed", dict(dispute, status="won")))
    assert available(alpha.workspace) == pack.credit_units


def test_unknown_events_are_stored_and_ignored(alpha, deliver):
    payload = event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"})
    assert deliver(payload).status_code == 200
    assert StripeEvent.objects.get(stripe_id=payload["id"]).status == StripeEvent.Status.IGNORED


def test_a_failed_handler_is_recorded_retried_and_credits_once(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    paid = invoice(alpha.workspace, pro, invoice_id="in_orphan", start=timezone.now().replace(microsecond=0))
    paid["parent"]["subscription_details"]["metadata"] = {}  # no workspace, unknown customer
    payload = event("invoice.paid", paid)
    assert deliver(payload).status_code == 200  # stored; fulfilment failed and waits for a retry

    stored = StripeEvent.objects.get(stripe_id=payload["id"])
    assert stored.status == StripeEvent.Status.FAILED
    assert "No workspace" in stored.last_error
    assert stored.next_attempt_at is not None
    assert events_retry_due() == 0  # not due yet

    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id=CUSTOMER)
    assert events_retry_due(now=stored.next_attempt_at + timedelta(seconds=1)) == 1
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.workspace_id) == ("processed", 2, alpha.workspace.pk)
    event_process(event_id=stored.pk, force=True)  # staff "reprocess": still once
    deliver(payload)  # and Stripe's own retry
    assert available(alpha.workspace) == pro.monthly_credit_units


SCENARIO_SEEDS = [1, 2, 3, 4, 5]


def _scenario(workspace: Workspace, catalogue: dict[str, Any], start: datetime, tag: str = "") -> list[dict[str, Any]]:
    """A pack bought then refunded, a Starter subscription upgraded to Professional, two paid
    periods. `tag` makes every Stripe id distinct (another workspace's objects)."""
    pro, starter, pack = catalogue["plans"]["professional"], catalogue["plans"]["starter"], catalogue["packs"]["medium"]
    sub = f"sub_s{tag}"
    payloads = [
        event("checkout.session.completed", pack_session(workspace, pack, session_id=f"cs_s{tag}", pi=f"pi_s{tag}")),
        event("customer.subscription.created", subscription(workspace, starter, start=start, sub_id=sub)),
        event("invoice.paid", invoice(workspace, starter, invoice_id=f"in_s1{tag}", start=start, sub_id=sub)),
        event(
            "customer.subscription.updated", subscription(workspace, pro, start=start + timedelta(days=30), sub_id=sub)
        ),
        event(
            "invoice.paid",
            invoice(workspace, pro, invoice_id=f"in_s2{tag}", start=start + timedelta(days=30), sub_id=sub),
        ),
        event(
            "charge.refunded",
            {
                "id": f"ch_s{tag}",
                "object": "charge",
                "payment_intent": f"pi_s{tag}",
                "amount": 3500,
                "amount_captured": 3500,
                "amount_refunded": 3500,
            },
        ),
    ]
    for payload in payloads:
        obj = payload["data"]["object"]
        if "customer" in obj:
            obj["customer"] = f"cus_s{tag}"
    return payloads


def _state(workspace: Workspace) -> tuple[Any, ...]:
    account = BillingAccount.objects.get(workspace=workspace)
    return (
        available(workspace),
        by_source(workspace),
        account.plan_id,
        account.subscription_status,
        account.current_period_end,
        sorted(Fulfilment.objects.filter(workspace=workspace).values_list("key", "credit_units")),
    )


@pytest.mark.parametrize("seed", SCENARIO_SEEDS)
def test_duplicates_and_shuffled_order_reach_the_same_state(alpha, beta, catalogue, deliver, seed):
    start = timezone.now().replace(microsecond=0) - timedelta(days=35)
    for payload in _scenario(alpha.workspace, catalogue, start):
        deliver(payload)
    expected = _state(alpha.workspace)
    assert expected[0] == catalogue["plans"]["professional"].monthly_credit_units  # the pack was refunded

    shuffled = _scenario(beta.workspace, catalogue, start, tag="b")
    deliveries = shuffled * 2
    random.Random(seed).shuffle(deliveries)
    for payload in deliveries:
        deliver(payload)
    events_retry_due(now=timezone.now() + timedelta(days=1))  # anything that waited for its customer

    got = _state(beta.workspace)
    untagged = {re.sub(r"b(?=:|$)", "", key): units for key, units in got[5]}
    assert got[:5] == expected[:5]
    assert sorted(untagged.items()) == expected[5]


def test_the_card_on_file_follows_attached_cards_and_charges(alpha, deliver):
    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id=CUSTOMER)
    card = {"brand": "visa", "last4": "4242", "exp_month": 4, "exp_year": 2030}
    charge = event(
        "charge.succeeded",
        {"id": "ch_card", "object": "charge", "customer": CUSTOMER, "payment_method_details": {"card": card}},
    )
    attached = event(
        "payment_method.attached",
        {
            "id": "pm_1",
            "object": "payment_method",
            "customer": CUSTOMER,
            "card": dict(card, brand="mastercard", last4="4444"),
        },
    )
    deliver(attached)  # the newer event first
    deliver(charge)  # older: changes nothing
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert (account.card_brand, account.card_last4, account.card_exp) == ("mastercard", "4444", "04/2030")
    other = event(
        "charge.succeeded",
        {"id": "ch_x", "object": "charge", "customer": "cus_unknown", "payment_method_details": {"card": card}},
    )
    deliver(other)
    assert StripeEvent.objects.get(stripe_id=other["id"]).status == StripeEvent.Status.IGNORED

"""What billing announces (apps/billing/signals.py): payments received, refunded and disputed,
subscriptions started, changed and ended — each once, on commit, with its documented arguments,
whatever the redeliveries, and never for a fulfilment that was rolled back."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from apps.billing.fulfilment import event_process
from apps.billing.models import BillingAccount, Fulfilment
from apps.billing.signals import (
    payment_disputed,
    payment_refunded,
    payment_succeeded,
    subscription_changed,
    subscription_ended,
    subscription_started,
)
from apps.billing.webhooks import event_record
from apps.credits.amounts import to_units
from tests.billing.conftest import event
from tests.billing.test_webhooks import CUSTOMER, invoice, pack_session, spend, subscription
from tests.events import listening, rolled_back

pytestmark = pytest.mark.django_db

PAYMENTS = (payment_succeeded, payment_refunded, payment_disputed)
SUBSCRIPTIONS = (subscription_started, subscription_changed, subscription_ended)
PAID = ("pk", "workspace_id", "kind", "amount_cents", "currency", "credit_units", "payment_intent_id")
TAKEN_BACK = ("pk", "workspace_id", "kind", "amount_cents", "currency", "credit_units", "shortfall_units")


# ---------------------------------------------------------------------------- payments


def test_a_paid_pack_is_announced_once_whatever_the_redeliveries(alpha, catalogue, deliver):
    pack = catalogue["packs"]["medium"]
    payload = event("checkout.session.completed", pack_session(alpha.workspace, pack, pi="pi_pack"))

    with listening(*PAYMENTS) as heard:
        deliver(payload)
        deliver(payload)

    paid = Fulfilment.objects.get(kind=Fulfilment.Kind.PACK)
    assert heard.rows(payment_succeeded, "fulfilment", *PAID) == [
        (paid.pk, alpha.workspace.pk, "pack", pack.price_cents, "usd", pack.credit_units + pack.bonus_units, "pi_pack")
    ]
    assert heard.senders(payment_succeeded) == [BillingAccount]


def test_a_paid_invoice_is_a_payment_and_a_free_trial_invoice_is_not(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    begin = timezone.now().replace(microsecond=0)

    with listening(payment_succeeded) as heard:
        deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_0", start=begin, amount=0)))
        deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_1", start=begin, pi="pi_in")))

    assert heard.rows(payment_succeeded, "fulfilment", "kind", "amount_cents", "payment_intent_id") == [
        (Fulfilment.Kind.SUBSCRIPTION, pro.price_monthly_cents, "pi_in")
    ]


def _charge(refunded: int) -> dict[str, Any]:
    return {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_pack",
        "amount": 1000,
        "amount_captured": 1000,
        "amount_refunded": refunded,
        "customer": CUSTOMER,
    }


def test_each_refund_is_announced_once(alpha, catalogue, deliver):
    pack = catalogue["packs"]["small"]  # 500 credits for $10
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack, pi="pi_pack")))
    spend(alpha.workspace, to_units(400), "spend")

    with listening(*PAYMENTS) as heard:
        deliver(event("charge.refunded", _charge(200)))  # 20%: 100 credits, still there
        deliver(event("charge.refunded", _charge(1000)))  # the rest: 400 credits, spent
        deliver(event("charge.refunded", _charge(1000)))  # redelivered

    refunds = list(Fulfilment.objects.filter(kind=Fulfilment.Kind.REFUND).order_by("id"))
    paid = Fulfilment.objects.get(kind=Fulfilment.Kind.PACK)
    ws = alpha.workspace.pk
    assert heard.rows(payment_refunded, "fulfilment", *TAKEN_BACK) == [
        (refunds[0].pk, ws, "refund", -200, "usd", -to_units(100), 0),
        (refunds[1].pk, ws, "refund", -800, "usd", -to_units(400), to_units(400)),
    ]
    assert heard.rows(payment_refunded, "fulfilment", "payment_intent_id") == [("pi_pack",), ("pi_pack",)]
    assert heard.rows(payment_refunded, "paid", "pk") == [(paid.pk,), (paid.pk,)]
    assert heard.of(payment_succeeded) == heard.of(payment_disputed) == []


def test_a_dispute_is_announced_once(alpha, catalogue, deliver):
    pack = catalogue["packs"]["small"]
    deliver(event("checkout.session.completed", pack_session(alpha.workspace, pack, pi="pi_d")))
    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": "pi_d", "amount": 1000, "status": "needs_response"}

    with listening(*PAYMENTS) as heard:
        deliver(event("charge.dispute.created", dispute))
        deliver(event("charge.dispute.created", dispute))

    taken = Fulfilment.objects.get(kind=Fulfilment.Kind.DISPUTE)
    assert heard.rows(payment_disputed, "fulfilment", *TAKEN_BACK, "payment_intent_id") == [
        (taken.pk, alpha.workspace.pk, "dispute", -1000, "usd", -pack.credit_units, 0, "pi_d")
    ]
    assert heard.rows(payment_disputed, "paid", "kind") == [("pack",)]


def test_a_fulfilment_rolled_back_announces_nothing(alpha, catalogue, django_capture_on_commit_callbacks):
    pack = catalogue["packs"]["small"]
    stored = event_record(event("checkout.session.completed", pack_session(alpha.workspace, pack)), mirror=False)
    assert stored is not None

    with listening(*PAYMENTS, *SUBSCRIPTIONS) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: event_process(event_id=stored.pk))

    assert heard.sends == []
    assert not Fulfilment.objects.exists()


# ---------------------------------------------------------------------------- subscriptions


def test_a_subscription_is_announced_as_it_starts_changes_and_ends(alpha, catalogue, deliver):
    starter, pro = catalogue["plans"]["starter"], catalogue["plans"]["professional"]

    with listening(*SUBSCRIPTIONS) as heard:
        created = event("customer.subscription.created", subscription(alpha.workspace, starter, status="trialing"))
        deliver(created)
        deliver(created)  # redelivered
        deliver(event("customer.subscription.updated", subscription(alpha.workspace, starter)))  # trial over
        deliver(event("customer.subscription.updated", subscription(alpha.workspace, pro, interval="year")))
        deliver(event("customer.subscription.updated", subscription(alpha.workspace, pro, interval="year")))  # same
        deliver(event("customer.subscription.deleted", subscription(alpha.workspace, pro, status="canceled")))

    common = {"account": BillingAccount.objects.get(workspace=alpha.workspace)}
    assert heard.of(subscription_started) == [
        {**common, "plan_code": "starter", "interval": "month", "status": "trialing"}
    ]
    assert heard.of(subscription_changed) == [
        {
            **common,
            "plan_code": "starter",
            "interval": "month",
            "status": "active",
            "previous_plan_code": "starter",
            "previous_interval": "month",
            "previous_status": "trialing",
        },
        {
            **common,
            "plan_code": "professional",
            "interval": "year",
            "status": "active",
            "previous_plan_code": "starter",
            "previous_interval": "month",
            "previous_status": "active",
        },
    ]
    assert heard.of(subscription_ended) == [
        {**common, "plan_code": "professional", "interval": "year", "status": "canceled"}
    ]
    assert heard.rows(subscription_started, "account", "workspace_id", "subscription_id") == [
        (alpha.workspace.pk, "sub_1")
    ]


def test_an_incomplete_subscription_has_not_started(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]

    with listening(*SUBSCRIPTIONS) as heard:
        deliver(event("customer.subscription.created", subscription(alpha.workspace, pro, status="incomplete")))
        deliver(event("customer.subscription.updated", subscription(alpha.workspace, pro, status="active")))

    assert [kwargs["status"] for kwargs in heard.of(subscription_started)] == ["active"]
    assert heard.of(subscription_changed) == heard.of(subscription_ended) == []

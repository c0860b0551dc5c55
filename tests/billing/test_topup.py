"""Auto top-up: a charge that takes the balance below the threshold charges the saved card for
the chosen pack once per crossing (off-session PaymentIntent on the fake Stripe API)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.billing.models import BillingAccount, Fulfilment, TopupAttempt
from apps.billing.topup import topup_rearm_all, topup_settings_update
from apps.credits.amounts import to_units
from apps.credits.models import Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_grant, credits_reserve, credits_settle
from apps.workspaces.models import Workspace
from tests.billing.conftest import event
from tests.conftest import Team
from tests.fakes.stripe import FakeStripe

pytestmark = pytest.mark.django_db


def available(workspace: Workspace) -> int:
    return credits_balance(workspace=workspace).available_units


def spend(workspace: Workspace, credits: int, key: str) -> None:
    reservation = credits_reserve(workspace=workspace, units=to_units(credits), idempotency_key=key)
    credits_settle(reservation=reservation, actual_units=to_units(credits))


@pytest.fixture
def armed(alpha: Team, catalogue: dict[str, Any], fake_stripe: FakeStripe) -> Workspace:
    """Alpha has 150 credits, a saved card, and tops up 500 credits below 100."""
    workspace = alpha.workspace
    credits_grant(workspace=workspace, amount="150", source=Source.PURCHASED, idempotency_key="start")
    topup_settings_update(
        workspace=workspace,
        acting_user=alpha.owner,
        enabled=True,
        threshold_units=to_units(100),
        pack=catalogue["packs"]["small"],
    )
    fake_stripe.put("customers", {"id": "cus_topup", "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    BillingAccount.objects.create(workspace=workspace, stripe_customer_id="cus_topup")
    return workspace


def test_crossing_the_threshold_charges_once_and_grants_the_pack(
    armed, catalogue, fake_stripe, django_capture_on_commit_callbacks
):
    pack = catalogue["packs"]["small"]
    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 30, "s1")  # 120: above the threshold, nothing
    assert fake_stripe.calls("POST", "/v1/payment_intents") == []

    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 30, "s2")  # 90: crosses

    (call,) = fake_stripe.calls("POST", "/v1/payment_intents")
    assert call.params["amount"] == str(pack.price_cents)
    assert call.params["customer"] == "cus_topup"
    assert call.params["payment_method"] == "pm_card_visa"
    assert (call.params["off_session"], call.params["confirm"]) == ("true", "true")
    assert call.params["metadata"]["kind"] == "topup"
    assert call.headers["Idempotency-Key"] == f"topup:{armed.pk}:1"
    assert available(armed) == to_units(90) + pack.credit_units
    assert TopupAttempt.objects.get().status == TopupAttempt.Status.SUCCEEDED


def test_the_webhook_for_the_same_payment_grants_nothing_more(
    armed, catalogue, fake_stripe, deliver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 60, "s1")
    intent = fake_stripe.all("payment_intents")[0]
    deliver(event("payment_intent.succeeded", dict(intent, customer="cus_topup")))
    assert Fulfilment.objects.filter(kind=Fulfilment.Kind.TOPUP).count() == 1
    assert available(armed) == to_units(90) + catalogue["packs"]["small"].credit_units


def test_spending_on_below_the_threshold_does_not_charge_again(armed, fake_stripe, django_capture_on_commit_callbacks):
    fake_stripe.put(
        "customers", {"id": "cus_topup", "invoice_settings": {"default_payment_method": "pm_card_declined"}}
    )
    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 60, "s1")  # crosses: the card is declined
    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 10, "s2")  # still below: no new crossing
    assert len(fake_stripe.calls("POST", "/v1/payment_intents")) == 1
    attempt = TopupAttempt.objects.get()
    assert attempt.status == TopupAttempt.Status.FAILED
    assert "declined" in attempt.error
    assert available(armed) == to_units(80)
    assert BillingAccount.objects.get(workspace=armed).topup_armed is False

    assert topup_rearm_all() == 0  # still below
    credits_grant(workspace=armed, amount="50", source=Source.BONUS, idempotency_key="gift")
    assert topup_rearm_all() == 1  # back above: the next crossing may charge again


def test_without_stripe_keys_nothing_is_charged(armed, no_stripe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 60, "s1")
    assert not TopupAttempt.objects.exists()
    assert available(armed) == to_units(90)


def test_a_low_balance_alert_without_auto_top_up_buys_nothing(
    alpha, catalogue, fake_stripe, django_capture_on_commit_callbacks
):
    workspace = alpha.workspace
    credits_grant(workspace=workspace, amount="150", source=Source.PURCHASED, idempotency_key="start")
    fake_stripe.put("customers", {"id": "cus_topup", "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    BillingAccount.objects.create(workspace=workspace, stripe_customer_id="cus_topup")

    with django_capture_on_commit_callbacks(execute=True):
        spend(workspace, 145, "s1")  # below the default low-balance alerts (100 and 10)

    assert fake_stripe.calls("POST", "/v1/payment_intents") == []
    assert not TopupAttempt.objects.exists()


def test_turning_auto_top_up_off_stops_the_charges(armed, alpha, fake_stripe, django_capture_on_commit_callbacks):
    topup_settings_update(workspace=armed, acting_user=alpha.owner, enabled=False, threshold_units=None, pack=None)

    with django_capture_on_commit_callbacks(execute=True):
        spend(armed, 60, "s1")

    assert fake_stripe.calls("POST", "/v1/payment_intents") == []
    assert available(armed) == to_units(90)

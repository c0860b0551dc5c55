"""The billing pages against the local fake Stripe: what Checkout, the portal and subscription
changes send, who may do them, the return from Checkout (fulfilled once, even when the webhook
follows), the billing page, and every refusal as a message rather than an error page."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.billing.models import BillingAccount, CreditPack, Fulfilment, Plan, PlanSource, SubscriptionStatus
from apps.credits.amounts import to_units
from apps.credits.selectors import credits_balance
from apps.workspaces.models import Workspace
from apps.workspaces.roles import Role
from tests.billing.conftest import event
from tests.factories import MembershipFactory, WorkspaceFactory
from tests.fakes.stripe import FakeStripe

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db


def customer_of(workspace: Workspace) -> str:
    return f"cus_{workspace.slug.replace('-', '_')}"


def available(workspace: Workspace) -> int:
    return credits_balance(workspace=workspace).available_units


def messages_of(response: TestResponse) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def subscribe(client: Client, plan: str = "starter", interval: str = "month", key: str | None = None) -> TestResponse:
    data = {"plan": plan, "interval": interval, "request_key": key or str(uuid.uuid4())}
    return client.post(reverse("billing:subscribe"), data)


def buy(client: Client, pack: str = "medium", key: str | None = None) -> TestResponse:
    return client.post(reverse("billing:buy_pack"), {"pack": pack, "request_key": key or str(uuid.uuid4())})


def subscribed(
    fake_stripe: FakeStripe,
    workspace: Workspace,
    plan: Plan,
    *,
    status: str = "active",
    interval: str = "month",
    **fields: Any,
) -> BillingAccount:
    """The workspace on a live Stripe subscription, in our table and in the fake."""
    now = timezone.now().replace(microsecond=0)
    end = now + timedelta(days=30)
    sub_id = f"sub_{workspace.pk}"
    fake_stripe.put(
        "subscriptions",
        {
            "id": sub_id,
            "customer": customer_of(workspace),
            "status": status,
            "cancel_at_period_end": False,
            "metadata": {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": interval},
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{workspace.pk}",
                        "price": {"id": plan.stripe_price_id(interval)},
                        "current_period_start": int(now.timestamp()),
                        "current_period_end": int(end.timestamp()),
                    }
                ],
            },
        },
    )
    account, _ = BillingAccount.objects.get_or_create(workspace=workspace)
    values = {
        "plan": plan,
        "plan_source": PlanSource.STRIPE,
        "stripe_customer_id": customer_of(workspace),
        "subscription_id": sub_id,
        "subscription_status": status,
        "interval": interval,
        "current_period_start": now,
        "current_period_end": end,
        **fields,
    }
    for name, value in values.items():
        setattr(account, name, value)
    account.save()
    return account


def pack_session(workspace: Workspace, pack: CreditPack, **overrides: Any) -> dict[str, Any]:
    return {
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "customer": customer_of(workspace),
        "client_reference_id": str(workspace.pk),
        "amount_total": pack.price_cents,
        "currency": "usd",
        "payment_intent": f"pi_{uuid.uuid4().hex[:8]}",
        "metadata": {
            "workspace_id": str(workspace.pk),
            "kind": "pack",
            "pack": pack.code,
            "credit_units": str(pack.credit_units),
            "bonus_units": str(pack.bonus_units),
        },
        **overrides,
    }


# ---------------------------------------------------------------------------- checkout


def test_subscribe_sends_checkout_params_and_redirects_to_stripe(client_for, alpha, catalogue, fake_stripe) -> None:
    key = str(uuid.uuid4())
    response = subscribe(client_for(alpha.owner, alpha.workspace), "starter", "year", key)
    [session] = fake_stripe.all("checkout/sessions")
    assert response.status_code == 303
    assert response["Location"] == session["url"]
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    params = call.params
    assert call.headers["Idempotency-Key"] == f"checkout:{alpha.workspace.pk}:{key}"
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": "price_starter_year", "quantity": "1"}]
    assert params["customer"] == BillingAccount.objects.get(workspace=alpha.workspace).stripe_customer_id
    assert params["client_reference_id"] == str(alpha.workspace.pk)
    assert params["metadata"] == {
        "workspace_id": str(alpha.workspace.pk),
        "plan": "starter",
        "interval": "year",
        "kind": "subscription",
    }
    assert params["subscription_data"]["trial_period_days"] == "7"
    assert "payment_method_collection" not in params  # Starter's trial asks for a card
    assert params["allow_promotion_codes"] == "true"
    assert params["success_url"] == "http://testserver/billing/checkout/success/?session_id={CHECKOUT_SESSION_ID}"
    assert params["cancel_url"] == "http://testserver/billing/pricing/?interval=year"
    [customer] = fake_stripe.calls("POST", "/v1/customers")
    assert customer.headers["Idempotency-Key"] == f"customer:{alpha.workspace.pk}"
    assert customer.params["metadata"]["workspace_id"] == str(alpha.workspace.pk)


def test_trial_without_card_collects_the_payment_method_only_if_required(
    client_for, alpha, catalogue, fake_stripe
) -> None:
    Plan.objects.filter(code="professional").update(trial_requires_card=False)
    assert subscribe(client_for(alpha.owner, alpha.workspace), "professional").status_code == 303
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call.params["payment_method_collection"] == "if_required"
    assert call.params["subscription_data"]["trial_period_days"] == "14"
    assert call.params["line_items"][0]["price"] == "price_professional_month"


def test_double_submit_reuses_one_session_and_one_customer(client_for, alpha, catalogue, fake_stripe) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    key = str(uuid.uuid4())
    first = subscribe(owner, key=key)
    second = subscribe(owner, key=key)
    assert first["Location"] == second["Location"]
    assert len(fake_stripe.all("checkout/sessions")) == 1
    buy(owner)  # another purchase: a new session, the same customer
    assert len(fake_stripe.all("checkout/sessions")) == 2
    assert len(fake_stripe.all("customers")) == 1


def test_buy_pack_sends_the_promised_credits_in_metadata(client_for, alpha, catalogue, fake_stripe) -> None:
    pack = catalogue["packs"]["medium"]
    response = buy(client_for(alpha.owner, alpha.workspace), "medium")
    assert response.status_code == 303
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    params = call.params
    assert params["mode"] == "payment"
    assert params["line_items"] == [{"price": "price_pack_medium", "quantity": "1"}]
    assert params["metadata"]["kind"] == "pack"
    assert params["metadata"]["credit_units"] == str(pack.credit_units)
    assert params["metadata"]["bonus_units"] == str(to_units(100))
    assert params["payment_intent_data"]["metadata"]["credit_units"] == str(pack.credit_units)
    assert params["success_url"].endswith("/billing/checkout/success/?session_id={CHECKOUT_SESSION_ID}")
    assert params["cancel_url"] == "http://testserver/billing/pricing/"


def test_unknown_plan_or_pack_is_404(client_for, alpha, catalogue, fake_stripe) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    assert subscribe(owner, "platinum").status_code == 404
    assert buy(owner, "huge").status_code == 404
    Plan.objects.filter(code="starter").update(is_active=False)
    assert subscribe(owner, "starter").status_code == 404
    assert fake_stripe.requests == []


def test_subscribing_when_already_subscribed_is_a_message_not_an_error(
    client_for, alpha, catalogue, fake_stripe
) -> None:
    subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    response = subscribe(client_for(alpha.owner, alpha.workspace), "professional")
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:pricing")
    followed = client_for(alpha.owner, alpha.workspace).get(reverse("billing:pricing"))
    assert followed.status_code == 200
    assert fake_stripe.calls("POST", "/v1/checkout/sessions") == []


def test_stripe_refusal_becomes_a_message(client_for, alpha, catalogue, fake_stripe) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id="cus_known")
    fake_stripe.fail_next(400)
    response = owner.post(reverse("billing:buy_pack"), {"pack": "small", "request_key": str(uuid.uuid4())}, follow=True)
    assert response.status_code == 200
    assert any("Stripe could not complete the request" in m for m in messages_of(response))


def test_malformed_form_is_a_message(client_for, alpha, catalogue, fake_stripe) -> None:
    response = client_for(alpha.owner, alpha.workspace).post(
        reverse("billing:subscribe"), {"plan": "starter", "interval": "month"}, follow=True
    )
    assert response.status_code == 200
    assert "This form has expired. Reload the page and try again." in messages_of(response)
    assert fake_stripe.requests == []


# ---------------------------------------------------------------------------- without Stripe


def test_without_stripe_keys_pages_render_and_purchases_are_refused(
    client_for, alpha, catalogue, fake_stripe, settings
) -> None:
    settings.STRIPE_TEST_SECRET_KEY = ""
    owner = client_for(alpha.owner, alpha.workspace)
    assert owner.get(reverse("billing:pricing")).status_code == 200
    page = owner.get(reverse("billing:overview"))
    assert page.status_code == 200
    assert 'data-testid="payments-off"' in page.content.decode()
    for response in (
        owner.post(
            reverse("billing:subscribe"),
            {"plan": "starter", "interval": "month", "request_key": str(uuid.uuid4())},
            follow=True,
        ),
        owner.post(reverse("billing:buy_pack"), {"pack": "small", "request_key": str(uuid.uuid4())}, follow=True),
        owner.post(reverse("billing:portal"), follow=True),
    ):
        assert response.status_code == 200
        assert any("Online payments are not configured" in m for m in messages_of(response))
    assert fake_stripe.requests == []
    assert not BillingAccount.objects.filter(workspace=alpha.workspace).exclude(stripe_customer_id="").exists()


# ---------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("role", ["admin", "member"])
def test_only_owners_can_buy_or_manage(role, client_for, alpha, catalogue, fake_stripe) -> None:
    subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    client = client_for(getattr(alpha, role), alpha.workspace)
    assert subscribe(client).status_code == 403
    assert buy(client).status_code == 403
    assert client.post(reverse("billing:portal")).status_code == 403
    assert client.get(reverse("billing:change"), {"plan": "professional", "interval": "month"}).status_code == 403
    assert client.post(reverse("billing:change"), {"plan": "professional", "interval": "month"}).status_code == 403
    assert client.post(reverse("billing:cancel")).status_code == 403
    assert client.post(reverse("billing:resume")).status_code == 403
    assert fake_stripe.requests == []
    page = client.get(reverse("billing:overview")).content.decode()
    assert 'data-testid="owner-only"' in page
    assert 'data-testid="portal"' not in page
    assert 'data-testid="cancel"' not in page


def test_member_cannot_redeem_codes(client_for, alpha, catalogue) -> None:
    response = client_for(alpha.member, alpha.workspace).post(reverse("billing:redeem"), {"code": "ANY"})
    assert response.status_code == 403
    assert (
        'data-testid="redeem"'
        not in client_for(alpha.member, alpha.workspace).get(reverse("billing:overview")).content.decode()
    )


def test_checkout_pages_need_a_signed_in_member(client, catalogue, fake_stripe) -> None:
    for name in ("billing:overview", "billing:success"):
        response = client.get(reverse(name), {"session_id": "cs_test_1"})
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]
    response = client.post(reverse("billing:subscribe"), {"plan": "starter"})
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# ---------------------------------------------------------------------------- portal, change, cancel


def test_portal_opens_a_session_for_the_workspace_customer(client_for, alpha, catalogue, fake_stripe) -> None:
    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id="cus_alpha")
    response = client_for(alpha.owner, alpha.workspace).post(reverse("billing:portal"))
    [portal] = fake_stripe.all("billing_portal/sessions")
    assert response.status_code == 303
    assert response["Location"] == portal["url"]
    [call] = fake_stripe.calls("POST", "/v1/billing_portal/sessions")
    assert call.params == {"customer": "cus_alpha", "return_url": "http://testserver/billing/"}
    assert fake_stripe.calls("POST", "/v1/customers") == []


def test_change_plan_confirms_then_updates_with_proration(client_for, alpha, catalogue, fake_stripe) -> None:
    account = subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    owner = client_for(alpha.owner, alpha.workspace)
    confirm = owner.get(reverse("billing:change"), {"plan": "professional", "interval": "year"})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'data-testid="change-confirm"' in html
    assert "Stripe prorates" in html
    assert "$490.00" in html
    assert "$19.00" in html
    assert fake_stripe.calls("POST", "/v1/subscriptions") == []  # nothing changes before the confirmation
    response = owner.post(reverse("billing:change"), {"plan": "professional", "interval": "year"})
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:overview")
    [call] = fake_stripe.calls("POST", f"/v1/subscriptions/{account.subscription_id}")
    assert call.params["proration_behavior"] == "create_prorations"
    assert call.params["items"] == [{"id": f"si_{alpha.workspace.pk}", "price": "price_professional_year"}]
    assert call.params["metadata"]["plan"] == "professional"


def test_change_to_the_current_plan_or_without_subscription_sends_nothing(
    client_for, alpha, catalogue, fake_stripe
) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    response = owner.post(reverse("billing:change"), {"plan": "professional", "interval": "month"})
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:pricing")
    subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    response = owner.post(reverse("billing:change"), {"plan": "starter", "interval": "month"}, follow=True)
    assert any("already on Starter" in m for m in messages_of(response))
    assert owner.get(reverse("billing:change"), {"plan": "nope", "interval": "month"}).status_code == 404
    assert fake_stripe.calls("POST", "/v1/subscriptions") == []


def test_cancel_at_period_end_and_resume(client_for, alpha, catalogue, fake_stripe) -> None:
    account = subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    owner = client_for(alpha.owner, alpha.workspace)
    page = owner.get(reverse("billing:overview")).content.decode()
    assert 'data-testid="cancel"' in page
    assert 'data-testid="resume"' not in page
    response = owner.post(reverse("billing:cancel"), follow=True)
    assert response.status_code == 200
    path = f"/v1/subscriptions/{account.subscription_id}"
    assert [c.params for c in fake_stripe.calls("POST", path)] == [{"cancel_at_period_end": "true"}]
    assert any("You can resume it until then" in m for m in messages_of(response))
    account.refresh_from_db()
    assert account.cancel_at_period_end  # the refresh applied Stripe's state
    page = owner.get(reverse("billing:overview")).content.decode()
    assert 'data-state="canceling"' in page
    assert 'data-testid="resume"' in page
    response = owner.post(reverse("billing:resume"), follow=True)
    assert [c.params for c in fake_stripe.calls("POST", path)][-1] == {"cancel_at_period_end": "false"}
    assert "The subscription continues and renews automatically." in messages_of(response)


# ---------------------------------------------------------------------------- return from Checkout


def test_success_page_fulfils_a_completed_pack_once_even_when_the_webhook_follows(
    client_for, alpha, catalogue, fake_stripe, deliver
) -> None:
    pack = catalogue["packs"]["medium"]
    session = fake_stripe.put("checkout/sessions", pack_session(alpha.workspace, pack))
    owner = client_for(alpha.owner, alpha.workspace)
    response = owner.get(reverse("billing:success"), {"session_id": session["id"]})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Payment received — 2,100 credits added." in html
    assert "$35.00" in html
    assert "/checkout/status/" not in html  # fulfilled: the page does not poll
    assert available(alpha.workspace) == pack.credit_units + pack.bonus_units
    assert deliver(event("checkout.session.completed", session)).status_code == 200
    owner.get(reverse("billing:success"), {"session_id": session["id"]})  # a reload
    assert available(alpha.workspace) == pack.credit_units + pack.bonus_units
    assert Fulfilment.objects.filter(workspace=alpha.workspace, kind=Fulfilment.Kind.PACK).count() == 1
    page = owner.get(reverse("billing:overview")).content.decode()
    assert "Credit pack: 2,000 credits" in page
    assert "$35.00" in page


def test_open_session_polls_until_done(client_for, alpha, catalogue, fake_stripe) -> None:
    pack = catalogue["packs"]["small"]
    session = fake_stripe.put(
        "checkout/sessions", pack_session(alpha.workspace, pack, status="open", payment_status="unpaid")
    )
    owner = client_for(alpha.owner, alpha.workspace)
    html = owner.get(reverse("billing:success"), {"session_id": session["id"]}).content.decode()
    assert 'data-testid="checkout-processing"' in html
    assert f'hx-get="/billing/checkout/status/?session_id={session["id"]}&amp;poll=1"' in html
    assert 'hx-trigger="load delay:2s"' in html
    assert available(alpha.workspace) == 0
    fragment = owner.get(reverse("billing:checkout_status"), {"session_id": session["id"], "poll": 1})
    assert "poll=2" in fragment.content.decode()
    assert "<html" not in fragment.content.decode()
    session.update(status="complete", payment_status="paid")
    fragment = owner.get(reverse("billing:checkout_status"), {"session_id": session["id"], "poll": 2}).content.decode()
    assert "Payment received — 500 credits added." in fragment
    assert "hx-get" not in fragment
    assert available(alpha.workspace) == pack.credit_units


def test_polling_stops_with_a_note_after_the_limit(client_for, alpha, catalogue, fake_stripe) -> None:
    session = fake_stripe.put(
        "checkout/sessions", pack_session(alpha.workspace, catalogue["packs"]["small"], payment_status="unpaid")
    )
    fragment = client_for(alpha.owner, alpha.workspace).get(
        reverse("billing:checkout_status"), {"session_id": session["id"], "poll": 30}
    )
    html = fragment.content.decode()
    assert 'data-testid="checkout-pending"' in html
    assert "hx-get" not in html


def test_success_page_shows_an_active_subscription(client_for, alpha, catalogue, fake_stripe) -> None:
    starter = catalogue["plans"]["starter"]
    account = subscribed(fake_stripe, alpha.workspace, starter)
    BillingAccount.objects.filter(pk=account.pk).update(
        subscription_id="", subscription_status="", plan=None, plan_source=PlanSource.DEFAULT
    )
    session = fake_stripe.put(
        "checkout/sessions",
        {
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "customer": customer_of(alpha.workspace),
            "client_reference_id": str(alpha.workspace.pk),
            "subscription": account.subscription_id,
            "metadata": {"workspace_id": str(alpha.workspace.pk), "plan": "starter", "interval": "month"},
        },
    )
    html = (
        client_for(alpha.owner, alpha.workspace)
        .get(reverse("billing:success"), {"session_id": session["id"]})
        .content.decode()
    )
    assert "Subscription active — Starter." in html
    account.refresh_from_db()
    assert account.subscription_status == SubscriptionStatus.ACTIVE
    assert account.plan == starter


@pytest.mark.outsider("billing:success", "billing:checkout_status")
@pytest.mark.parametrize("who", ["beta_owner", "outsider"])
def test_another_workspaces_session_is_404(who, client_for, alpha, beta, outsider, catalogue, fake_stripe) -> None:
    pack = catalogue["packs"]["medium"]
    session = fake_stripe.put("checkout/sessions", pack_session(alpha.workspace, pack))
    if who == "outsider":
        own = WorkspaceFactory.create(name="Outsider's")
        MembershipFactory.create(workspace=own, user=outsider, role=Role.OWNER)
        client = client_for(outsider, alpha.workspace)  # asks for Alpha; not a member of it
    else:
        client = client_for(beta.owner, beta.workspace)
    assert client.get(reverse("billing:success"), {"session_id": session["id"]}).status_code == 404
    assert client.get(reverse("billing:checkout_status"), {"session_id": session["id"]}).status_code == 404
    assert available(alpha.workspace) == 0  # nothing fulfilled on their behalf
    # Once Alpha's own page has fulfilled it, the others still see nothing of it.
    client_for(alpha.owner, alpha.workspace).get(reverse("billing:success"), {"session_id": session["id"]})
    assert client.get(reverse("billing:success"), {"session_id": session["id"]}).status_code == 404


def test_unknown_or_malformed_session_is_404(client_for, alpha, catalogue, fake_stripe) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    assert owner.get(reverse("billing:success"), {"session_id": "cs_test_missing"}).status_code == 404
    assert owner.get(reverse("billing:success"), {"session_id": "../../v1/customers"}).status_code == 404
    assert owner.get(reverse("billing:success")).status_code == 404


# ---------------------------------------------------------------------------- billing page


def test_billing_page_for_a_subscribed_workspace(
    client_for, alpha, catalogue, fake_stripe, django_assert_max_num_queries
) -> None:
    from djstripe.models import Customer, Invoice

    account = subscribed(
        fake_stripe,
        alpha.workspace,
        catalogue["plans"]["professional"],
        card_brand="visa",
        card_last4="4242",
        card_exp="12/2030",
    )
    for i in range(25):
        Fulfilment.objects.create(
            workspace=alpha.workspace,
            key=f"invoice:in_{i}",
            kind=Fulfilment.Kind.SUBSCRIPTION,
            stripe_object_id=f"in_{i}",
            credit_units=to_units(5000),
            amount_cents=4900,
            currency="usd",
            description="Professional (month)",
            invoice_number=f"INV-{i:04d}",
            hosted_invoice_url=f"https://invoice.stripe.test/in_{i}",
            invoice_pdf=f"https://invoice.stripe.test/in_{i}.pdf",
        )
    customer = Customer.objects.create(id=account.stripe_customer_id, livemode=False)
    for i in range(3):
        Invoice.objects.create(
            id=f"in_dj_{i}",
            customer=customer,
            livemode=False,
            created=timezone.now() - timedelta(days=30 * i),
            stripe_data={
                "number": f"DJ-{i}",
                "status": "paid",
                "amount_paid": 4900,
                "currency": "usd",
                "hosted_invoice_url": f"https://invoice.stripe.test/dj_{i}",
                "invoice_pdf": f"https://invoice.stripe.test/dj_{i}.pdf",
            },
        )
    other = Customer.objects.create(id="cus_someone_else", livemode=False)
    Invoice.objects.create(id="in_other", customer=other, livemode=False, stripe_data={"number": "NOT-OURS"})
    owner = client_for(alpha.owner, alpha.workspace)
    owner.get(reverse("billing:overview"))  # the first request of a session records it
    # Session and membership (8), the account (2: its own, then `plan_for`), history count and
    # page, invoices, plans for the change form, and the layout's branding, balance, switcher and
    # sidebar history.
    with django_assert_max_num_queries(18):
        response = owner.get(reverse("billing:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="active"' in html
    assert "Professional" in html
    assert "5,000" in html  # credits per month
    assert "Visa ending in 4242" in html
    assert html.count("data-fulfilment=") == 20
    assert 'data-testid="pagination"' in html
    assert "$49.00" in html
    assert "INV-0024" in html
    assert "https://invoice.stripe.test/in_24.pdf" in html
    assert html.count("data-invoice=") == 3
    assert "DJ-0" in html
    assert "NOT-OURS" not in html
    assert 'data-testid="portal"' in html
    assert 'data-testid="change-plan"' in html
    assert 'data-testid="cancel"' in html
    assert 'data-testid="redeem"' in html
    second = owner.get(reverse("billing:overview"), {"page": 2}).content.decode()
    assert second.count("data-fulfilment=") == 5


def test_billing_page_query_count_does_not_grow_with_history(
    client_for, alpha, catalogue, fake_stripe, django_assert_max_num_queries
) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    Fulfilment.objects.create(workspace=alpha.workspace, key="pack:cs_first", kind=Fulfilment.Kind.PACK, currency="usd")
    owner.get(reverse("billing:overview"))  # the first request of a session records it
    with django_assert_max_num_queries(17) as one_row:  # 16 + the sidebar's history
        owner.get(reverse("billing:overview"))
    for i in range(40):
        Fulfilment.objects.create(
            workspace=alpha.workspace, key=f"pack:cs_{i}", kind=Fulfilment.Kind.PACK, currency="usd"
        )
    with django_assert_max_num_queries(len(one_row.captured_queries)):
        owner.get(reverse("billing:overview"))


@pytest.mark.outsider("billing:overview")
def test_billing_page_for_a_free_workspace_member(client_for, alpha, beta, catalogue, fake_stripe) -> None:
    Fulfilment.objects.create(
        workspace=beta.workspace, key="pack:cs_beta", kind=Fulfilment.Kind.PACK, description="Beta's pack"
    )
    response = client_for(alpha.member, alpha.workspace).get(reverse("billing:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="free"' in html
    assert "Free" in html
    assert 'data-testid="no-history"' in html
    assert "Beta&#x27;s pack" not in html
    assert "Beta's pack" not in html
    assert 'data-testid="owner-only"' in html


def test_billing_page_names_the_free_plan_once(client_for, alpha, catalogue, fake_stripe) -> None:
    html = client_for(alpha.owner, alpha.workspace).get(reverse("billing:overview")).content.decode()

    header = html.split('data-testid="plan"')[1].split("</header>")[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", header).split())
    assert text.endswith("Free No subscription")  # was "Free Free": the plan, then a badge saying the same
    assert "This workspace is on the Free plan. Choose a plan to get more credits." in html


@pytest.mark.parametrize(
    ("fields", "state", "text"),
    [
        ({"subscription_status": "past_due"}, "past_due", "The last payment failed"),
        ({"cancel_at_period_end": True}, "canceling", "stays until the period ends"),
        ({"restricted": True}, "restricted", "paid features are blocked"),
        ({"subscription_status": "trialing"}, "trialing", "Free trial of Starter"),
    ],
)
def test_billing_page_explains_the_status(fields, state, text, client_for, alpha, catalogue, fake_stripe) -> None:
    subscribed(
        fake_stripe,
        alpha.workspace,
        catalogue["plans"]["starter"],
        trial_ends_at=timezone.now() + timedelta(days=3),
        **fields,
    )
    html = client_for(alpha.admin, alpha.workspace).get(reverse("billing:overview")).content.decode()
    assert f'data-state="{state}"' in html
    assert text in html


# ---------------------------------------------------------------------------- redemption codes


def test_admin_redeems_a_code(client_for, alpha, catalogue) -> None:
    pytest.importorskip("apps.billing.codes")
    from apps.billing.models import Redemption, RedemptionCode

    RedemptionCode.objects.create(code="WELCOME100", credit_units=to_units(100))
    admin = client_for(alpha.admin, alpha.workspace)
    response = admin.post(reverse("billing:redeem"), {"code": "WELCOME100"}, follow=True)
    assert response.status_code == 200
    assert any(m.startswith("Code redeemed") and "100 credits added" in m for m in messages_of(response))
    assert Redemption.objects.filter(workspace=alpha.workspace, code__code="WELCOME100").count() == 1
    assert available(alpha.workspace) == to_units(100)
    again = admin.post(reverse("billing:redeem"), {"code": "WELCOME100"}, follow=True)
    assert again.status_code == 200
    assert messages_of(again)
    assert available(alpha.workspace) == to_units(100)
    unknown = admin.post(reverse("billing:redeem"), {"code": "NOPE"}, follow=True)
    assert unknown.status_code == 200
    assert messages_of(unknown)


@pytest.mark.outsider(
    "billing:subscribe",
    "billing:buy_pack",
    "billing:portal",
    "billing:change",
    "billing:cancel",
    "billing:resume",
    "billing:redeem",
)
@pytest.mark.parametrize("who", ["beta_owner", "outsider", "anonymous"])
def test_someone_outside_alpha_cannot_buy_for_manage_or_cancel_its_subscription(
    who, client, client_for, alpha, beta, outsider, catalogue, fake_stripe
) -> None:
    from apps.billing.models import Redemption, RedemptionCode

    account = subscribed(fake_stripe, alpha.workspace, catalogue["plans"]["starter"])
    RedemptionCode.objects.create(code="WELCOME100", credit_units=to_units(100))
    before = BillingAccount.objects.filter(pk=account.pk).values().get()
    if who == "anonymous":
        intruder = client
    else:  # asks for Alpha; not a member of it (the outsider has no workspace at all)
        intruder = client_for(beta.owner if who == "beta_owner" else outsider, alpha.workspace)
    change = {"plan": "professional", "interval": "month"}

    responses = [
        subscribe(intruder),
        buy(intruder),
        intruder.post(reverse("billing:portal")),
        intruder.get(reverse("billing:change"), change),
        intruder.post(reverse("billing:change"), change),
        intruder.post(reverse("billing:cancel")),
        intruder.post(reverse("billing:resume")),
        intruder.post(reverse("billing:redeem"), {"code": "WELCOME100"}),
    ]

    for response in responses:
        if who == "anonymous":
            assert (response.status_code, response["Location"].split("?")[0]) == (302, reverse("account_login"))
        elif who == "outsider":
            assert (response.status_code, response["Location"]) == (302, reverse("workspaces:create"))
        else:  # acts on Beta, its own workspace
            assert response.status_code in (200, 302, 303)
            assert customer_of(alpha.workspace) not in response.content.decode()
    assert bool(fake_stripe.requests) == (who == "beta_owner")  # Beta's checkout and portal, for Beta
    for request in fake_stripe.requests:  # nothing sent to Stripe about Alpha's customer or subscription
        assert account.subscription_id not in request.path
        assert customer_of(alpha.workspace) not in request.path + str(request.params)
        assert request.params.get("metadata", {}).get("workspace_id") != str(alpha.workspace.pk)
        assert request.params.get("client_reference_id") != str(alpha.workspace.pk)
    assert BillingAccount.objects.filter(pk=account.pk).values().get() == before
    assert fake_stripe.get("subscriptions", account.subscription_id)["cancel_at_period_end"] is False
    assert not Redemption.objects.filter(workspace=alpha.workspace).exists()
    assert available(alpha.workspace) == 0

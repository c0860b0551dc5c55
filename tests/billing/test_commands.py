"""`manage.py billing`: the catalogue pushed to Stripe (once, new prices for changed amounts),
reconciling paid Stripe objects with our fulfilments, registering the webhook endpoint and
seeding the plans, called as ops would call them, against the local fake Stripe."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from constance.test.pytest import override_config
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.billing.models import CreditPack, Fulfilment, Plan, StripeEvent
from apps.billing.seed import billing_seed_catalogue
from apps.credits.models import CreditGrant
from apps.credits.selectors import credits_balance
from tests.billing.conftest import event, sign
from tests.fakes.stripe import FakeStripe

pytestmark = pytest.mark.django_db

PAID_PLANS = ["starter", "professional", "enterprise"]


def run(*args: Any) -> list[str]:
    out = io.StringIO()
    call_command("billing", *[str(a) for a in args], stdout=out)
    return out.getvalue().splitlines()


def creates(fake: FakeStripe, resource: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == f"/v1/{resource}"]


def updates(fake: FakeStripe, resource: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.startswith(f"/v1/{resource}/")]


@pytest.fixture
def seeded(db: Any) -> None:
    billing_seed_catalogue()


# ---------------------------------------------------------------------------- sync_stripe


def test_sync_creates_a_product_and_monthly_and_yearly_prices_per_paid_plan(seeded, fake_stripe):
    with override_config(BILLING_TAX_BEHAVIOR="inclusive"):
        lines = run("sync_stripe")

    assert lines == [
        "billing sync_stripe: products 6 created, 0 updated, 0 unchanged; prices 9 created, 0 archived, 0 unchanged."
    ]
    starter = Plan.objects.get(code="starter")
    product = fake_stripe.get("products", starter.stripe_product_id)
    assert (product["name"], product["description"], product["metadata"]) == (
        "Starter",
        starter.description,
        {"plan": "starter"},
    )
    prices = {r.params["lookup_key"]: r for r in creates(fake_stripe, "prices")}
    assert set(prices) == {f"{code}_{i}" for code in PAID_PLANS for i in ("month", "year")} | {
        "pack_small",
        "pack_medium",
        "pack_large",
    }
    monthly = prices["starter_month"]
    assert monthly.params == {
        "product": starter.stripe_product_id,
        "currency": "usd",
        "unit_amount": "1900",
        "recurring": {"interval": "month"},
        "tax_behavior": "inclusive",
        "lookup_key": "starter_month",
        "transfer_lookup_key": "true",
        "nickname": "Starter (monthly)",
        "metadata": {"plan": "starter", "interval": "month"},
    }
    assert prices["starter_year"].params["unit_amount"] == "19000"
    assert prices["starter_year"].params["recurring"] == {"interval": "year"}
    assert monthly.headers["Idempotency-Key"] == "sync:price:plan:starter:month:1900:usd:new"
    assert fake_stripe.get("prices", starter.stripe_price_monthly_id)["unit_amount"] == 1900
    assert fake_stripe.get("prices", starter.stripe_price_yearly_id)["unit_amount"] == 19000
    # The free plan is not sold.
    assert Plan.objects.get(code="free").stripe_product_id == ""
    pack = CreditPack.objects.get(code="medium")
    pack_price = fake_stripe.get("prices", pack.stripe_price_id)
    assert (pack_price["unit_amount"], pack_price["product"], pack_price.get("recurring")) == (
        3500,
        pack.stripe_product_id,
        None,
    )
    assert all(
        r.headers.get("Idempotency-Key") for r in creates(fake_stripe, "products") + creates(fake_stripe, "prices")
    )


def test_a_second_sync_creates_nothing(seeded, fake_stripe):
    run("sync_stripe")
    fake_stripe.requests.clear()

    lines = run("sync_stripe")

    assert lines == [
        "billing sync_stripe: products 0 created, 0 updated, 6 unchanged; prices 0 created, 0 archived, 9 unchanged."
    ]
    assert creates(fake_stripe, "products") == creates(fake_stripe, "prices") == []
    assert updates(fake_stripe, "products") == updates(fake_stripe, "prices") == []


def test_a_sync_interrupted_before_storing_ids_gets_the_same_objects_back(seeded, fake_stripe):
    run("sync_stripe")
    products, prices = len(fake_stripe.all("products")), len(fake_stripe.all("prices"))
    before = Plan.objects.get(code="starter")
    # As if the run had crashed after Stripe created them and before we saved their ids.
    Plan.objects.filter(code="starter").update(
        stripe_product_id="", stripe_price_monthly_id="", stripe_price_yearly_id=""
    )

    run("sync_stripe")

    after = Plan.objects.get(code="starter")
    assert (after.stripe_product_id, after.stripe_price_monthly_id, after.stripe_price_yearly_id) == (
        before.stripe_product_id,
        before.stripe_price_monthly_id,
        before.stripe_price_yearly_id,
    )
    assert (len(fake_stripe.all("products")), len(fake_stripe.all("prices"))) == (products, prices)


def test_a_changed_price_makes_a_new_stripe_price_and_archives_the_old_one(seeded, fake_stripe):
    run("sync_stripe")
    starter = Plan.objects.get(code="starter")
    old_monthly, old_yearly = starter.stripe_price_monthly_id, starter.stripe_price_yearly_id
    Plan.objects.filter(pk=starter.pk).update(price_monthly_cents=2400)
    fake_stripe.requests.clear()

    lines = run("sync_stripe")

    assert lines == [
        "billing sync_stripe: products 0 created, 0 updated, 6 unchanged; prices 1 created, 1 archived, 8 unchanged."
    ]
    starter.refresh_from_db()
    assert starter.stripe_price_monthly_id != old_monthly
    assert starter.stripe_price_yearly_id == old_yearly
    new = fake_stripe.get("prices", starter.stripe_price_monthly_id)
    assert (new["unit_amount"], new["lookup_key"], new["transfer_lookup_key"]) == (2400, "starter_month", "true")
    assert fake_stripe.get("prices", old_monthly)["active"] == "false"
    [archive] = updates(fake_stripe, "prices")
    assert (archive.path, archive.params) == (f"/v1/prices/{old_monthly}", {"active": "false"})
    assert creates(fake_stripe, "prices")[0].headers["Idempotency-Key"] == (
        f"sync:price:plan:starter:month:2400:usd:{old_monthly}"
    )


def test_a_plan_no_longer_sold_yearly_has_its_yearly_price_archived(seeded, fake_stripe):
    run("sync_stripe")
    starter = Plan.objects.get(code="starter")
    yearly = starter.stripe_price_yearly_id
    Plan.objects.filter(pk=starter.pk).update(price_yearly_cents=0)

    lines = run("sync_stripe")

    assert "prices 0 created, 1 archived, 8 unchanged" in lines[0]
    starter.refresh_from_db()
    assert starter.stripe_price_yearly_id == ""
    assert fake_stripe.get("prices", yearly)["active"] == "false"


def test_a_currency_change_also_makes_a_new_price(seeded, fake_stripe):
    run("sync_stripe")
    pack = CreditPack.objects.get(code="small")
    old = pack.stripe_price_id
    CreditPack.objects.filter(pk=pack.pk).update(currency="eur")

    run("sync_stripe")

    pack.refresh_from_db()
    assert pack.stripe_price_id != old
    assert fake_stripe.get("prices", pack.stripe_price_id)["currency"] == "eur"
    assert fake_stripe.get("prices", old)["active"] == "false"


def test_a_renamed_plan_updates_its_product(seeded, fake_stripe):
    run("sync_stripe")
    Plan.objects.filter(code="starter").update(name="Starter+", description="")
    fake_stripe.requests.clear()

    lines = run("sync_stripe")

    assert "products 0 created, 1 updated, 5 unchanged" in lines[0]
    product_id = Plan.objects.get(code="starter").stripe_product_id
    [update] = updates(fake_stripe, "products")
    assert update.path == f"/v1/products/{product_id}"
    assert update.params == {"name": "Starter+", "description": "", "active": "true"}
    assert creates(fake_stripe, "products") == []


def test_ids_stripe_does_not_know_are_replaced_by_new_objects(catalogue, fake_stripe):
    # The catalogue fixture's ids (`prod_starter`, `price_starter_month`...) do not exist at the
    # fake, as after switching from test to live keys.
    run("sync_stripe")

    starter = Plan.objects.get(code="starter")
    assert starter.stripe_product_id not in ("", "prod_starter")
    assert fake_stripe.get("products", starter.stripe_product_id)["name"] == "Starter"
    assert fake_stripe.get("prices", starter.stripe_price_monthly_id)["unit_amount"] == 1900
    assert updates(fake_stripe, "prices") == []  # nothing to archive


def test_sync_without_stripe_keys_says_what_to_set(seeded, no_stripe):
    with pytest.raises(CommandError, match="STRIPE_TEST_SECRET_KEY"):
        run("sync_stripe")


def test_a_stripe_error_is_a_command_error(seeded, fake_stripe):
    fake_stripe.fail_next(400)

    with pytest.raises(CommandError, match="Stripe refused"):
        run("sync_stripe")


# ---------------------------------------------------------------------------- reconcile


def paid_session(workspace: Any, pack: CreditPack, session_id: str = "cs_test_lost") -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "customer": "cus_alpha",
        "client_reference_id": str(workspace.pk),
        "amount_total": pack.price_cents,
        "currency": "usd",
        "payment_intent": f"pi_{session_id}",
        "created": int(time.time()) - 3600,
        "metadata": {
            "workspace_id": str(workspace.pk),
            "kind": "pack",
            "pack": pack.code,
            "credit_units": str(pack.credit_units),
            "bonus_units": str(pack.bonus_units),
        },
    }


def paid_invoice(workspace: Any, plan: Plan, invoice_id: str = "in_lost", amount: int = 1900) -> dict[str, Any]:
    start = int(time.time()) - 3600
    return {
        "id": invoice_id,
        "object": "invoice",
        "status": "paid",
        "customer": "cus_alpha",
        "billing_reason": "subscription_cycle",
        "amount_paid": amount,
        "currency": "usd",
        "created": start,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": "sub_alpha",
                "metadata": {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": "month"},
            },
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{invoice_id}",
                    "period": {"start": start, "end": start + 30 * 86400},
                    "pricing": {"price_details": {"price": plan.stripe_price_monthly_id}},
                }
            ],
        },
    }


def available(workspace: Any) -> int:
    return credits_balance(workspace=workspace).available_units


def test_reconcile_lists_a_paid_session_without_fulfilment_and_changes_nothing(alpha, catalogue, fake_stripe):
    pack = catalogue["packs"]["medium"]
    fake_stripe.put("checkout/sessions", paid_session(alpha.workspace, pack))
    # Not ours to fulfil: an open session and a subscription checkout.
    fake_stripe.put("checkout/sessions", {**paid_session(alpha.workspace, pack, "cs_open"), "status": "open"})
    fake_stripe.put("checkout/sessions", {**paid_session(alpha.workspace, pack, "cs_sub"), "mode": "subscription"})

    lines = run("reconcile")

    assert lines[0].startswith("  missing pack:cs_test_lost ($35.00, customer cus_alpha")
    assert (
        lines[-1]
        == "billing reconcile: 1 paid object(s) in the last 7 day(s), 1 without fulfilment; 0 failed event(s)."
    )
    assert not Fulfilment.objects.exists()
    assert available(alpha.workspace) == 0
    [listing] = fake_stripe.calls("GET", "/v1/checkout/sessions")
    assert listing.params["status"] == "complete"
    assert abs(int(listing.params["created"]["gte"]) - (int(time.time()) - 7 * 86400)) < 60


def test_reconcile_fix_fulfils_a_missing_session_once(alpha, catalogue, fake_stripe, deliver):
    pack = catalogue["packs"]["medium"]
    session = fake_stripe.put("checkout/sessions", paid_session(alpha.workspace, pack))

    lines = run("reconcile", "--fix")

    assert lines[0].endswith("→ fulfilled")
    assert lines[-1].endswith("1 without fulfilment, 1 fixed; 0 failed event(s).")
    assert available(alpha.workspace) == pack.credit_units + pack.bonus_units
    assert Fulfilment.objects.get(key="pack:cs_test_lost").kind == Fulfilment.Kind.PACK
    # Again, and then the webhook's own (late) event: still granted once.
    assert run("reconcile", "--fix")[-1].endswith("0 without fulfilment, 0 fixed; 0 failed event(s).")
    deliver(event("checkout.session.completed", session))
    assert available(alpha.workspace) == pack.credit_units + pack.bonus_units
    assert CreditGrant.objects.filter(workspace=alpha.workspace).count() == 2  # purchased + bonus


def test_reconcile_fix_grants_a_missing_subscription_invoice(alpha, catalogue, fake_stripe):
    starter = catalogue["plans"]["starter"]
    fake_stripe.put("invoices", paid_invoice(alpha.workspace, starter))
    # A trial's zero invoice and an unpaid one are not missing anything.
    fake_stripe.put("invoices", paid_invoice(alpha.workspace, starter, "in_trial", amount=0))
    fake_stripe.put("invoices", {**paid_invoice(alpha.workspace, starter, "in_open"), "status": "open"})

    assert run("reconcile")[0].startswith("  missing invoice:in_lost ($19.00")
    lines = run("reconcile", "--fix")

    assert lines[-1] == (
        "billing reconcile: 1 paid object(s) in the last 7 day(s), 1 without fulfilment, 1 fixed; 0 failed event(s)."
    )
    assert available(alpha.workspace) == starter.monthly_credit_units
    assert Fulfilment.objects.get(key="invoice:in_lost").kind == Fulfilment.Kind.SUBSCRIPTION


def test_reconcile_reports_our_failed_events(alpha, catalogue, fake_stripe):
    StripeEvent.objects.create(
        stripe_id="evt_broken",
        type="invoice.paid",
        created="2026-01-01T00:00:00Z",
        payload={},
        status=StripeEvent.Status.FAILED,
        attempts=3,
        last_error="Unattributable: No workspace for invoice in_x",
    )

    lines = run("reconcile", "--days", "2")

    assert (
        "  failed event evt_broken (invoice.paid, 3 attempt(s)): Unattributable: No workspace for invoice in_x" in lines
    )
    assert lines[-1].endswith("in the last 2 day(s), 0 without fulfilment; 1 failed event(s).")


def test_reconcile_without_stripe_keys_is_refused(db, no_stripe):
    with pytest.raises(CommandError, match="Stripe is not configured"):
        run("reconcile")


# ---------------------------------------------------------------------------- webhook


def test_webhook_registers_the_endpoint_and_prints_its_url(db, settings):
    from djstripe.models import WebhookEndpoint

    settings.STRIPE_LIVE_MODE = False
    [line] = run("webhook", "--secret", "whsec_first", "--url", "https://aikeedo.example/")

    endpoint = WebhookEndpoint.objects.get(id="we_local")
    url = f"https://aikeedo.example/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert line.endswith(url)
    assert "created" in line
    assert (endpoint.url, endpoint.secret, endpoint.enabled_events, endpoint.status, endpoint.livemode) == (
        url,
        "whsec_first",
        ["*"],
        "enabled",
        False,
    )
    import stripe

    assert endpoint.api_version == stripe.api_version


def test_webhook_again_keeps_the_url_and_takes_the_new_secret(db, settings):
    from djstripe.models import WebhookEndpoint

    settings.STRIPE_WEBHOOK_SECRET = "whsec_from_settings"
    run("webhook", "--url", "https://aikeedo.example")
    first = WebhookEndpoint.objects.get(id="we_local")

    [line] = run("webhook", "--secret", "whsec_rotated", "--url", "https://aikeedo.example")

    again = WebhookEndpoint.objects.get(id="we_local")
    assert first.secret == "whsec_from_settings"
    assert again.djstripe_uuid == first.djstripe_uuid
    assert again.secret == "whsec_rotated"
    assert "updated" in line
    assert WebhookEndpoint.objects.count() == 1


def test_the_registered_endpoint_accepts_events_signed_with_its_secret(alpha, catalogue):
    from djstripe.models import WebhookEndpoint

    run("webhook", "--secret", "whsec_registered", "--url", "https://aikeedo.example", "--id", "we_main")
    endpoint = WebhookEndpoint.objects.get(id="we_main")
    body = json.dumps(event("customer.created", {"id": "cus_new", "object": "customer"}))

    good = Client().post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, "whsec_registered"),
    )
    bad = Client().post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, "whsec_other"),
    )

    assert good.status_code == 200
    assert bad.status_code == 400


def test_webhook_without_a_secret_is_refused(db, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""

    with pytest.raises(CommandError, match="signing secret"):
        run("webhook", "--url", "https://aikeedo.example")


# ---------------------------------------------------------------------------- seed_plans


def test_seed_plans_creates_the_catalogue_once(db):
    first = run("seed_plans")
    second = run("seed_plans")

    assert first == [
        "billing seed_plans: created 4 plan(s) and 3 credit pack(s); the catalogue has 4 plan(s) and 3 pack(s)."
    ]
    assert second == [
        "billing seed_plans: created 0 plan(s) and 0 credit pack(s); the catalogue has 4 plan(s) and 3 pack(s)."
    ]
    assert list(Plan.objects.filter(is_default=True).values_list("code", flat=True)) == ["free"]


def test_seed_plans_leaves_staff_edits_alone(db):
    run("seed_plans")
    Plan.objects.filter(code="starter").update(price_monthly_cents=2500, name="Starter 2026")

    run("seed_plans")

    starter = Plan.objects.get(code="starter")
    assert (starter.name, starter.price_monthly_cents) == ("Starter 2026", 2500)

"""The billing back office: the catalogue edited and audited, redemption codes created in
batches and exported, read-only billing records, and staff actions (assign a plan, extend a
trial, grant credits, reprocess a Stripe event) that go through the services and are audited.
Changelists cost the same queries at any size; people who are not staff never get in."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.billing.codes import billing_code_redeem, billing_codes_create
from apps.billing.models import (
    AutoTopup,
    BillingAccount,
    CreditPack,
    Fulfilment,
    Plan,
    PlanSource,
    Redemption,
    RedemptionCode,
    StripeEvent,
    TopupAttempt,
)
from apps.billing.services import billing_plan_assign
from apps.credits.amounts import to_units
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from tests.billing.conftest import event
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

BILLING_MODELS = sorted(apps.get_app_config("billing").get_models(), key=lambda m: m.__name__)


def url(model: type[Any], page: str, *args: Any) -> str:
    return reverse(f"admin:billing_{model._meta.model_name}_{page}", args=args)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def available(workspace: Any) -> int:
    return credits_balance(workspace=workspace).available_units


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _code(batch: str = "launch", **kwargs: Any) -> RedemptionCode:
    kwargs.setdefault("credits", Decimal("5"))
    return billing_codes_create(
        count=1,
        plan=kwargs.pop("plan", None),
        plan_days=kwargs.pop("plan_days", 0),
        max_redemptions=kwargs.pop("max_redemptions", 1),
        expires_at=None,
        batch=batch,
        acting_user=None,
        **kwargs,
    )[0]


def _rows_for(workspace: Any, i: int, catalogue: dict[str, Any]) -> None:
    """One row of every billing model for `workspace`."""
    owner = MembershipFactory.create(workspace=workspace).user
    billing_plan_assign(
        workspace=workspace, plan=catalogue["plans"]["starter"], acting_user=None, days=30, reason="rows"
    )
    code = _code(batch=f"batch-{i}")
    billing_code_redeem(workspace=workspace, acting_user=owner, code=code.code)
    stripe_event = StripeEvent.objects.create(
        stripe_id=f"evt_rows_{i}",
        type="invoice.paid",
        created=timezone.now(),
        payload={"id": f"evt_rows_{i}", "data": {"object": {}}},
        status=StripeEvent.Status.PROCESSED,
        workspace=workspace,
    )
    Fulfilment.objects.create(
        workspace=workspace,
        key=f"invoice:in_rows_{i}",
        kind=Fulfilment.Kind.SUBSCRIPTION,
        stripe_object_id=f"in_rows_{i}",
        event=stripe_event,
        amount_cents=1900,
        currency="usd",
        credit_units=to_units(1000),
        description="Starter (month)",
        hosted_invoice_url=f"https://invoice.stripe.test/in_rows_{i}",
        invoice_number=f"INV-{i}",
    )
    TopupAttempt.objects.create(
        workspace=workspace,
        pack=catalogue["packs"]["small"],
        idempotency_key=f"topup-rows-{i}",
        payment_intent_id=f"pi_rows_{i}",
    )
    AutoTopup.objects.create(
        workspace=workspace, enabled=True, threshold_units=to_units(10), pack=catalogue["packs"]["small"]
    )
    Plan.objects.create(code=f"plan-{i}", name=f"Plan {i}", price_monthly_cents=100 * i)
    CreditPack.objects.create(code=f"pack-{i}", name=f"Pack {i}", credit_units=to_units(i), price_cents=100 * i)


@pytest.fixture
def rows(alpha: Any, beta: Any, catalogue: dict[str, Any]) -> dict[str, Any]:
    _rows_for(alpha.workspace, 1, catalogue)
    _rows_for(beta.workspace, 2, catalogue)
    return catalogue


# ---------------------------------------------------------------------------- registry


def test_billing_models_exist():
    # Guards the parametrised tests below against silently running on nothing.
    assert {m.__name__ for m in BILLING_MODELS} == {
        "AutoTopup",
        "BillingAccount",
        "CreditPack",
        "Fulfilment",
        "Plan",
        "Redemption",
        "RedemptionCode",
        "StripeEvent",
        "TopupAttempt",
    }


@pytest.mark.parametrize("model", BILLING_MODELS, ids=lambda m: m.__name__)
def test_every_billing_model_is_registered_with_selected_relations(model):
    model_admin = admin.site._registry[model]
    relations = [f.name for f in model._meta.fields if f.is_relation]
    shown = [name for name in model_admin.list_display if name in relations]

    selected = model_admin.list_select_related or []
    assert not isinstance(selected, bool), "list the relations rather than selecting all"
    assert set(shown) <= set(selected)


@pytest.mark.parametrize("model", BILLING_MODELS, ids=lambda m: m.__name__)
def test_changelist_change_page_and_search_load(staff_client, rows, model):
    listing = staff_client.get(url(model, "changelist"))
    searched = staff_client.get(url(model, "changelist"), {"q": "alpha"})
    obj = model._default_manager.order_by("pk").first()
    page = staff_client.get(url(model, "change", obj.pk))

    assert listing.status_code == 200
    assert listing.context["cl"].result_count >= 2
    assert searched.status_code == 200
    assert page.status_code == 200


CHANGELIST_QUERIES = {
    "AutoTopup": 11,
    "BillingAccount": 12,  # + the plan filter's choices
    "CreditPack": 12,
    "Fulfilment": 11,
    "Plan": 12,
    "Redemption": 11,
    "RedemptionCode": 13,  # + the batch and plan filters' choices
    "StripeEvent": 12,  # + the type filter's choices
    "TopupAttempt": 11,
}


@pytest.mark.parametrize("model", BILLING_MODELS, ids=lambda m: m.__name__)
def test_changelist_query_count_does_not_grow_with_rows(staff_client, rows, model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(url(model, "changelist")).status_code == 200
        return len(ctx.captured_queries)

    queries()  # warm: the first request of a session loads what later ones reuse
    few = queries()
    for i in range(3, 9):
        _rows_for(WorkspaceFactory.create(), i, rows)

    assert queries() == few
    # 8 for the session, user, user-session and workspace middleware; the rest is the page.
    assert few <= CHANGELIST_QUERIES[model.__name__]


@pytest.mark.parametrize("model", BILLING_MODELS, ids=lambda m: m.__name__)
def test_people_who_are_not_staff_never_reach_the_billing_admin(client, rows, alpha, outsider, model):
    obj = model._default_manager.order_by("pk").first()
    for user in (alpha.owner, outsider):
        client.force_login(user)
        for page in (url(model, "changelist"), url(model, "change", obj.pk)):
            response = client.get(page)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_billing_permissions_get_403(client, rows):
    client.force_login(UserFactory.create(is_staff=True))

    assert client.get(url(BillingAccount, "changelist")).status_code == 403
    assert client.get(url(RedemptionCode, "add")).status_code == 403
    assert client.get(url(RedemptionCode, "export") + "?batch=batch-1").status_code == 403


@pytest.mark.parametrize(
    "model", [BillingAccount, StripeEvent, Fulfilment, Redemption, TopupAttempt, RedemptionCode], ids=str
)
def test_records_cannot_be_edited_or_deleted(staff_client, rows, model):
    obj = model._default_manager.order_by("pk").first()
    model_admin = admin.site._registry[model]

    response = staff_client.post(url(model, "delete", obj.pk), {"post": "yes"})

    assert response.status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()
    assert "delete_selected" not in model_admin.get_actions(staff_client.get("/").wsgi_request)


# ---------------------------------------------------------------------------- catalogue


def _plan_form(client: Client, plan: Plan, **changes: Any) -> dict[str, Any]:
    """What the browser sends back from the plan's page, with `changes`."""
    form = client.get(url(Plan, "change", plan.pk)).context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        if field.show_hidden_initial:  # fields with a callable default (JSON lists and dicts)
            data[f"initial-{name}"] = value
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    data.update(changes)
    return data


def test_plan_list_shows_prices_credits_and_workspaces_on_it(staff_client, rows):
    response = staff_client.get(url(Plan, "changelist"))

    body = response.content.decode()
    assert "$19.00" in body
    assert "$190.00" in body
    assert "1,000" in body
    starter = next(p for p in response.context["cl"].result_list if p.code == "starter")
    assert starter.accounts_count == 2


def test_plan_edit_stores_credits_in_units_and_is_audited(staff_client, staff, catalogue):
    plan = catalogue["plans"]["starter"]

    response = staff_client.post(
        url(Plan, "change", plan.pk),
        _plan_form(staff_client, plan, monthly_credits="1500.5", price_monthly_cents="2400"),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    plan.refresh_from_db()
    assert (plan.monthly_credit_units, plan.price_monthly_cents) == (to_units("1500.5"), 2400)
    assert plan.code == "starter"
    audit = AuditEvent.objects.get(action="billing.plan_change")
    assert audit.actor == staff
    assert set(audit.metadata["fields"]) == {"monthly_credits", "price_monthly_cents"}


def test_plan_page_lists_the_models_restricted_to_it(staff_client, catalogue):
    from apps.generation.models import AIModel, Provider

    provider = Provider.objects.create(name="Fake", kind="openai")
    AIModel.objects.create(
        model_id="pro-only", display_name="Pro", provider=provider, upstream_model="x", plans=["professional"]
    )
    AIModel.objects.create(model_id="for-everyone", display_name="All", provider=provider, upstream_model="y")
    AIModel.objects.create(
        model_id="enterprise-only", display_name="Ent", provider=provider, upstream_model="z", plans=["enterprise"]
    )

    body = staff_client.get(url(Plan, "change", catalogue["plans"]["professional"].pk)).content.decode()
    starter = staff_client.get(url(Plan, "change", catalogue["plans"]["starter"].pk)).content.decode()

    assert "pro-only" in body
    assert "for-everyone" not in body
    assert "enterprise-only" not in body
    assert "uses the models open to every plan" in starter


def test_credit_pack_add_stores_credits_in_units_and_is_audited(staff_client, staff, db):
    response = staff_client.post(
        url(CreditPack, "add"),
        {
            "name": "Huge",
            "code": "huge",
            "credits": "50000",
            "bonus": "2500.5",
            "price_cents": "50000",
            "currency": "usd",
            "is_active": "on",
            "sort_order": "40",
        },
    )

    assert response.status_code == 302
    pack = CreditPack.objects.get(code="huge")
    assert (pack.credit_units, pack.bonus_units) == (to_units(50000), to_units("2500.5"))
    assert AuditEvent.objects.get(action="billing.pack_create").actor == staff


# ---------------------------------------------------------------------------- codes


BATCH = {
    "batch": "partner-x",
    "count": "25",
    "credits": "100",
    "plan": "",
    "plan_days": "",
    "max_redemptions": "2",
    "expires_at_0": "",
    "expires_at_1": "",
    "code_prefix": "",
}


def test_create_a_batch_of_codes_from_the_admin(staff_client, staff, catalogue):
    form = staff_client.get(url(RedemptionCode, "add"))
    response = staff_client.post(
        url(RedemptionCode, "add"),
        {**BATCH, "plan": catalogue["plans"]["starter"].pk, "plan_days": "14", "code_prefix": "px"},
    )

    assert form.status_code == 200
    assert response.status_code == 302
    assert response["Location"] == url(RedemptionCode, "changelist") + "?batch=partner-x"
    codes = RedemptionCode.objects.filter(batch="partner-x")
    assert codes.count() == 25
    assert set(codes.values_list("credit_units", "plan__code", "plan_days", "max_redemptions", "created_by")) == {
        (to_units(100), "starter", 14, 2, staff.pk)
    }
    assert all(c.startswith("PX-") for c in codes.values_list("code", flat=True))
    audit = AuditEvent.objects.get(action="billing.codes_create")
    assert (audit.actor, audit.metadata["count"], audit.metadata["batch"]) == (staff, 25, "partner-x")
    assert "Download them as CSV" in messages_of(response)[0]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"credits": "", "plan": ""}, "credits, a plan, or both"),
        ({"plan": "starter", "plan_days": ""}, "number of days"),
        ({"batch": "taken"}, "already exists"),
    ],
)
def test_a_batch_form_that_makes_no_sense_creates_nothing(staff_client, catalogue, changes, error):
    _code(batch="taken")
    if changes.get("plan") == "starter":
        changes["plan"] = catalogue["plans"]["starter"].pk

    response = staff_client.post(url(RedemptionCode, "add"), {**BATCH, **changes})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert RedemptionCode.objects.count() == 1


def test_export_a_batch_as_csv_is_audited(staff_client, staff, db):
    codes = billing_codes_create(
        count=3,
        credits=Decimal("10"),
        plan=None,
        plan_days=0,
        max_redemptions=1,
        expires_at=None,
        batch="spring",
        acting_user=None,
    )
    _code(batch="other")

    response = staff_client.get(url(RedemptionCode, "export"), {"batch": "spring"})

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="codes-spring.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["code", "batch", "credits", "plan", "plan_days", "max_uses", "used", "expires_at", "active"]
    assert sorted(r[0] for r in rows[1:]) == sorted(c.code for c in codes)
    assert {tuple(r[1:3]) for r in rows[1:]} == {("spring", "10")}
    audit = AuditEvent.objects.get(action="billing.codes_export")
    assert (audit.actor, audit.metadata) == (staff, {"batch": "spring", "count": 3})


def test_export_selected_codes_action(staff_client, staff, db):
    first, second = _code(batch="a"), _code(batch="b")

    response = staff_client.post(
        url(RedemptionCode, "changelist"), {"action": "export_csv", "_selected_action": [first.pk]}
    )

    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert [r[0] for r in rows[1:]] == [first.code]
    assert second.code not in body
    assert AuditEvent.objects.get(action="billing.codes_export").actor == staff


def test_codes_filter_by_batch_and_expiry(staff_client, db):
    batch_a = _code(batch="a")
    _code(batch="b")
    expired = _code(batch="a")
    RedemptionCode.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))

    by_batch = staff_client.get(url(RedemptionCode, "changelist"), {"batch": "a"})
    live = staff_client.get(url(RedemptionCode, "changelist"), {"batch": "a", "expired": "no"})
    searched = staff_client.get(url(RedemptionCode, "changelist"), {"q": batch_a.code.lower()})

    assert {c.pk for c in by_batch.context["cl"].result_list} == {batch_a.pk, expired.pk}
    assert [c.pk for c in live.context["cl"].result_list] == [batch_a.pk]
    assert [c.pk for c in searched.context["cl"].result_list] == [batch_a.pk]


def test_deactivate_codes_is_audited(staff_client, staff, alpha):
    code = _code()

    staff_client.post(url(RedemptionCode, "changelist"), {"action": "deactivate", "_selected_action": [code.pk]})

    code.refresh_from_db()
    assert code.is_active is False
    assert AuditEvent.objects.get(action="billing.codes_deactivate").actor == staff


# ---------------------------------------------------------------------------- account actions


def _account(workspace: Any) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(workspace=workspace)
    return account


def _action(client: Client, action: str, accounts: list[BillingAccount], **data: Any) -> Any:
    return client.post(
        url(BillingAccount, "changelist"),
        {"action": action, "_selected_action": [a.pk for a in accounts], **data},
    )


def test_account_page_shows_state_and_payment_history(staff_client, rows, alpha):
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    BillingAccount.objects.filter(pk=account.pk).update(stripe_customer_id="cus_alpha", subscription_status="active")

    body = staff_client.get(url(BillingAccount, "change", account.pk)).content.decode()

    assert "cus_alpha" in body
    assert "Starter (month)" in body  # the invoice's fulfilment
    assert "$19.00" in body
    code = Redemption.objects.get(workspace=alpha.workspace).code
    assert f"Code {code.code}: 5 credits" in body  # the redemption's
    assert f"{url(Fulfilment, 'changelist')}?workspace={alpha.workspace.pk}" in body


def test_an_account_is_opened_from_add_and_audited(staff_client, staff, alpha):
    response = staff_client.post(url(BillingAccount, "add"), {"workspace": alpha.workspace.pk})

    assert response.status_code == 302
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert AuditEvent.objects.get(action="billing.account_open").target_id == str(account.pk)


def test_assign_plan_asks_then_assigns_through_the_service(staff_client, staff, alpha, beta, catalogue):
    accounts = [_account(alpha.workspace), _account(beta.workspace)]

    form = _action(staff_client, "assign_plan", accounts)
    done = _action(
        staff_client,
        "assign_plan",
        accounts,
        apply="1",
        plan=catalogue["plans"]["professional"].pk,
        days="10",
        reason="Conference giveaway",
    )

    assert form.status_code == 200
    assert "Assign plan" in form.content.decode()
    assert done.status_code == 302
    for account in accounts:
        account.refresh_from_db()
        assert account.plan is not None
        assert account.plan_expires_at is not None
        assert (account.plan.code, account.plan_source) == ("professional", PlanSource.STAFF)
        assert timedelta(days=9, hours=23) < account.plan_expires_at - timezone.now() <= timedelta(days=10)
    audits = AuditEvent.objects.filter(action="billing.plan_assign")
    assert {(a.actor, a.workspace, a.metadata["reason"]) for a in audits} == {
        (staff, alpha.workspace, "Conference giveaway"),
        (staff, beta.workspace, "Conference giveaway"),
    }


def test_assign_plan_requires_a_reason(staff_client, alpha, catalogue):
    account = _account(alpha.workspace)

    response = _action(
        staff_client, "assign_plan", [account], apply="1", plan=catalogue["plans"]["professional"].pk, reason=""
    )

    assert response.status_code == 200
    account.refresh_from_db()
    assert account.plan is None
    assert not AuditEvent.objects.filter(action="billing.plan_assign").exists()


def test_extend_trial_of_a_time_limited_plan_and_refuse_others(staff_client, staff, alpha, beta, catalogue):
    trial = billing_plan_assign(
        workspace=alpha.workspace, plan=catalogue["plans"]["starter"], acting_user=None, days=3, source="trial"
    )
    plain = _account(beta.workspace)
    before = trial.plan_expires_at

    response = _action(staff_client, "extend_trial", [trial, plain], apply="1", days="5")

    trial.refresh_from_db()
    assert trial.plan_expires_at is not None
    assert before is not None
    assert trial.plan_expires_at - before == timedelta(days=5)
    texts = messages_of(response)
    assert "Extended 1 trial(s) by 5 day(s)." in texts
    assert any("not on a trial" in t for t in texts)
    audit = AuditEvent.objects.get(action="billing.trial_extend")
    assert (audit.actor, audit.workspace, audit.metadata["days"]) == (staff, alpha.workspace, 5)


def test_grant_credits_through_the_service_once_per_form(staff_client, staff, alpha, beta):
    accounts = [_account(alpha.workspace), _account(beta.workspace)]
    form = _action(staff_client, "grant_credits", accounts)
    key = form.context["form"].initial["key"]
    data = {
        "apply": "1",
        "amount": "25.5",
        "reason": "Outage credit",
        "key": key,
        "expires_at_0": "",
        "expires_at_1": "",
    }

    _action(staff_client, "grant_credits", accounts, **data)
    _action(staff_client, "grant_credits", accounts, **data)  # the same form sent again

    for workspace in (alpha.workspace, beta.workspace):
        assert available(workspace) == to_units("25.5")
        grant = CreditGrant.objects.get(workspace=workspace)
        assert (grant.source, grant.created_by, grant.reason) == (Source.BONUS, staff, "Outage credit")
    audits = AuditEvent.objects.filter(action="credits.grant")
    assert audits.count() == 2
    assert {a.actor for a in audits} == {staff}


def test_staff_who_may_only_view_accounts_have_no_actions(client, alpha):
    viewer = UserFactory.create(is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(content_type__app_label="billing", codename__startswith="view_")
    )
    client.force_login(viewer)
    account = _account(alpha.workspace)

    listing = client.get(url(BillingAccount, "changelist"))
    response = _action(client, "grant_credits", [account], apply="1", amount="5", reason="x", key="k")

    assert listing.status_code == 200
    assert "grant_credits" not in listing.content.decode()
    assert available(alpha.workspace) == 0
    assert not AuditEvent.objects.filter(action="credits.grant").exists()
    assert response.status_code == 200  # no action to run: just the list again


# ---------------------------------------------------------------------------- Stripe events


def _orphan_invoice(workspace: Any, plan: Plan) -> dict[str, Any]:
    """A paid invoice that names only a Stripe customer we have not linked to a workspace yet."""
    start = int(timezone.now().timestamp())
    return {
        "id": "in_orphan",
        "object": "invoice",
        "customer": "cus_unlinked",
        "billing_reason": "subscription_cycle",
        "amount_paid": 1900,
        "currency": "usd",
        "parent": {"subscription_details": {"subscription": "sub_orphan", "metadata": {}}},
        "lines": {
            "data": [
                {
                    "id": "il_orphan",
                    "period": {"start": start, "end": start + 30 * 86400},
                    "pricing": {"price_details": {"price": plan.stripe_price_monthly_id}},
                }
            ]
        },
    }


def test_reprocess_a_failed_event_grants_once_and_is_audited(staff_client, staff, alpha, catalogue, deliver):
    starter = catalogue["plans"]["starter"]
    payload = event("invoice.paid", _orphan_invoice(alpha.workspace, starter))
    deliver(payload)
    stored = StripeEvent.objects.get(stripe_id=payload["id"])
    assert stored.status == StripeEvent.Status.FAILED
    assert "Unattributable" in stored.last_error
    # The link arrives (as `checkout.session.completed` would make it).
    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id="cus_unlinked")

    first = staff_client.post(url(StripeEvent, "changelist"), {"action": "reprocess", "_selected_action": [stored.pk]})
    staff_client.post(url(StripeEvent, "changelist"), {"action": "reprocess", "_selected_action": [stored.pk]})

    stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.PROCESSED
    assert stored.workspace == alpha.workspace
    assert available(alpha.workspace) == starter.monthly_credit_units
    assert Fulfilment.objects.filter(key="invoice:in_orphan").count() == 1
    assert "Reprocessed 1 event(s): 1 processed, 0 ignored, 0 failed." in messages_of(first)
    audits = AuditEvent.objects.filter(action="billing.event_reprocess").order_by("id")
    assert [(a.actor, a.metadata["before"], a.metadata["after"]) for a in audits] == [
        (staff, "failed", "processed"),
        (staff, "processed", "processed"),
    ]
    assert audits[0].workspace == alpha.workspace


def test_reprocess_reports_an_event_that_still_fails(staff_client, staff, alpha, catalogue, deliver):
    payload = event("invoice.paid", _orphan_invoice(alpha.workspace, catalogue["plans"]["starter"]))
    deliver(payload)
    stored = StripeEvent.objects.get(stripe_id=payload["id"])

    response = staff_client.post(
        url(StripeEvent, "changelist"), {"action": "reprocess", "_selected_action": [stored.pk]}
    )

    texts = messages_of(response)
    assert "Reprocessed 1 event(s): 0 processed, 0 ignored, 1 failed." in texts
    assert any(t.startswith(f"{payload['id']}: Unattributable") for t in texts)
    assert AuditEvent.objects.get(action="billing.event_reprocess").metadata["after"] == "failed"
    assert available(alpha.workspace) == 0


def test_events_filter_by_status_and_search_by_id(staff_client, rows):
    failed = StripeEvent.objects.create(
        stripe_id="evt_failed_one",
        type="charge.refunded",
        created=timezone.now(),
        payload={},
        status=StripeEvent.Status.FAILED,
    )

    by_status = staff_client.get(url(StripeEvent, "changelist"), {"status__exact": "failed"})
    by_type = staff_client.get(url(StripeEvent, "changelist"), {"type__exact": "charge.refunded"})
    by_id = staff_client.get(url(StripeEvent, "changelist"), {"q": "evt_failed_one"})

    for response in (by_status, by_type, by_id):
        assert [e.pk for e in response.context["cl"].result_list] == [failed.pk]


def test_fulfilments_filter_by_kind_and_search_by_stripe_id(staff_client, rows, alpha):
    by_kind = staff_client.get(url(Fulfilment, "changelist"), {"kind__exact": "redemption"})
    by_id = staff_client.get(url(Fulfilment, "changelist"), {"q": "in_rows_1"})
    by_workspace = staff_client.get(url(Fulfilment, "changelist"), {"workspace": alpha.workspace.pk})

    assert {f.kind for f in by_kind.context["cl"].result_list} == {"redemption"}
    assert by_kind.context["cl"].result_count == 2
    assert [f.key for f in by_id.context["cl"].result_list] == ["invoice:in_rows_1"]
    assert {f.workspace for f in by_workspace.context["cl"].result_list} == {alpha.workspace}

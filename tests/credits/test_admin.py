"""The credits back office: balances as read-only projections, adjustments and grants only
through the services (with a reason, an actor and an audit row), a read-only ledger, releasing
holds, rate cards that publish a new version instead of changing a used one, and changelists
whose query count does not grow with their rows."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.credits.models import (
    CreditAccount,
    CreditGrant,
    EntryKind,
    LedgerEntry,
    RateCard,
    Reservation,
    Service,
    Source,
)
from apps.credits.rates import rate_card_publish
from apps.credits.services import credits_account_open, credits_grant, credits_reserve, credits_settle
from apps.workspaces.models import Workspace
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

CREDIT_MODELS = sorted(apps.get_app_config("credits").get_models(), key=lambda m: m.__name__)


def url(model: type[Any], page: str, *args: Any) -> str:
    return reverse(f"admin:credits_{model._meta.model_name}_{page}", args=args)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def fund(workspace: Workspace, amount: str = "100", **kwargs: Any) -> CreditGrant:
    kwargs.setdefault("source", Source.PURCHASED)
    kwargs.setdefault("idempotency_key", f"fund-{workspace.pk}-{CreditGrant.objects.count()}")
    return credits_grant(workspace=workspace, amount=amount, **kwargs)


def account_of(workspace: Workspace) -> CreditAccount:
    return CreditAccount.objects.get(workspace=workspace)


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def viewer_client(db: Any) -> Client:
    """Staff who may look at credits but change nothing."""
    viewer = UserFactory.create(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(content_type__app_label="credits", codename__startswith="view_")
    )
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def ledger(alpha: Team, beta: Team) -> dict[str, Any]:
    """Rows of every credits model: grants, a settled and a held reservation, a rate card."""
    card = rate_card_publish(
        service=Service.TEXT, model="gpt-4o", acting_user=None, input_per_1k="0.25", output_per_1k="1"
    )
    fund(alpha.workspace, "1234.5")
    fund(beta.workspace, "50", source=Source.TRIAL, expires_at=timezone.now() + timedelta(days=3))
    settled = credits_reserve(workspace=alpha.workspace, amount="10", idempotency_key="call-1", rate_card=card)
    credits_settle(reservation=settled, actual="4")
    held = credits_reserve(workspace=alpha.workspace, amount="20", idempotency_key="call-2", user=alpha.member)
    return {"card": card, "settled": settled, "held": held}


# ---------------------------------------------------------------------------- registry


def test_credit_models_exist():
    # Guards the parametrised tests below against silently running on nothing.
    assert {m.__name__ for m in CREDIT_MODELS} == {
        "CreditAccount",
        "CreditGrant",
        "LedgerEntry",
        "RateCard",
        "Reservation",
    }


@pytest.mark.parametrize("model", CREDIT_MODELS, ids=lambda m: m.__name__)
def test_every_credits_model_is_registered(model):
    assert model in admin.site._registry


@pytest.mark.parametrize("model", CREDIT_MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_page_load(staff_client, ledger, model):
    listing = staff_client.get(url(model, "changelist"))
    obj = model._default_manager.order_by("pk").first()
    page = staff_client.get(url(model, "change", obj.pk))

    assert listing.status_code == 200
    assert listing.context["cl"].result_count >= 1
    assert page.status_code == 200


def _grow(alpha: Team, extra: int) -> None:
    """More rows of every kind, each with its own workspace, member and card."""
    start = Workspace.objects.count()
    for i in range(start, start + extra):
        workspace = WorkspaceFactory.create()
        fund(workspace, "10")
        user = UserFactory.create()
        reservation = credits_reserve(workspace=workspace, amount="1", idempotency_key=f"grow-{i}", user=user)
        credits_settle(reservation=reservation, actual="1")
        rate_card_publish(service=Service.TEXT, model=f"m-{i}", acting_user=user, input_per_1k="1", output_per_1k="1")


@pytest.mark.parametrize("model", CREDIT_MODELS, ids=lambda m: m.__name__)
def test_changelist_query_count_does_not_grow_with_rows(staff_client, ledger, alpha, model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(url(model, "changelist")).status_code == 200
        return len(ctx.captured_queries)

    _grow(alpha, 2)
    queries()  # warm: the first request of a session loads what later ones reuse
    few = queries()
    _grow(alpha, 8)

    assert queries() == few
    assert few <= 12


# ---------------------------------------------------------------------------- accounts


def test_accounts_list_balances_as_credits(staff_client, ledger, alpha):
    response = staff_client.get(url(CreditAccount, "changelist"), {"q": alpha.workspace.slug})

    [account] = response.context["cl"].result_list
    assert account.workspace == alpha.workspace
    body = response.content.decode()
    assert "1,210.5" in body  # available: 1234.5 - 4 charged - 20 held
    assert "1,230.5" in body  # balance


def test_accounts_filter_below_an_alert_level(staff_client, alpha, beta):
    fund(alpha.workspace, "5")
    fund(beta.workspace, "500")
    credits_reserve(workspace=alpha.workspace, amount="1", idempotency_key="spend")

    response = staff_client.get(url(CreditAccount, "changelist"), {"low": "yes"})

    assert [a.workspace for a in response.context["cl"].result_list] == [alpha.workspace]


def test_staff_who_may_only_view_see_the_settings_in_credits(viewer_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)
    CreditAccount.objects.filter(pk=account.pk).update(daily_cap_units=2_500_000, alert_thresholds=[1_000_000, 55_000])

    page = viewer_client.get(url(CreditAccount, "change", account.pk))
    post = viewer_client.post(url(CreditAccount, "change", account.pk), {"daily_cap": "1"})

    assert page.status_code == 200
    shown = {
        field.field["label"]: str(field.contents())
        for fieldset in page.context["adminform"]
        for line in fieldset
        for field in line
    }
    assert shown["Daily cap"] == "250"
    assert shown["Monthly cap"] == "none"
    assert shown["Low-balance alerts"] == "100, 5.5"
    assert post.status_code == 403
    assert CreditAccount.objects.get(pk=account.pk).daily_cap_units == 2_500_000


def test_accounts_cannot_be_added_or_deleted(staff_client, ledger, alpha):
    account = account_of(alpha.workspace)

    assert staff_client.get(url(CreditAccount, "add")).status_code == 403
    assert staff_client.post(url(CreditAccount, "delete", account.pk), {"post": "yes"}).status_code == 403
    assert CreditAccount.objects.filter(pk=account.pk).exists()


def _settings_form(client: Client, account: CreditAccount, **changes: Any) -> dict[str, Any]:
    form = client.get(url(CreditAccount, "change", account.pk)).context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data.update(changes)
    return data


def test_settings_change_stores_caps_in_units_and_audits(staff_client, staff, alpha):
    fund(alpha.workspace, "100")
    account = account_of(alpha.workspace)

    response = staff_client.post(
        url(CreditAccount, "change", account.pk),
        _settings_form(staff_client, account, daily_cap="25.5", monthly_cap="500", thresholds="50, 5.5"),
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.daily_cap_units, account.monthly_cap_units) == (255_000, 5_000_000)
    assert account.alert_thresholds == [500_000, 55_000]
    event = AuditEvent.objects.get(action="credits.settings_update")
    assert (event.actor, event.workspace) == (staff, alpha.workspace)
    assert event.metadata["changes"]["daily_cap_units"] == {"from": None, "to": 255_000}


def test_settings_change_leaves_balances_to_the_ledger(staff_client, alpha):
    fund(alpha.workspace, "100")
    account = account_of(alpha.workspace)
    data = _settings_form(staff_client, account, daily_cap="10")
    # A charge lands while the page is open.
    credits_settle(
        reservation=credits_reserve(workspace=alpha.workspace, amount="30", idempotency_key="c"), actual="30"
    )

    staff_client.post(
        url(CreditAccount, "change", account.pk), {**data, "balance_units": "999999999", "held_units": "0"}
    )

    account.refresh_from_db()
    assert (account.balance_units, account.held_units) == (700_000, 0)
    assert account.daily_cap_units == 100_000
    assert_ledger_consistent()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks and concurrent connections")
@pytest.mark.django_db(transaction=True)
def test_settings_saved_while_a_call_reserves_keep_the_hold(alpha):
    """The admin loads the account, a reservation commits, then the admin saves: the hold made
    in between must survive (a plain `save()` would write back the balance it loaded)."""
    staff_user = UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff_user)
    fund(alpha.workspace, "100")
    account = account_of(alpha.workspace)
    data = _settings_form(client, account, daily_cap="50")
    locked = threading.Event()

    def reserve_slowly() -> None:
        try:
            with transaction.atomic():
                credits_reserve(workspace=alpha.workspace, amount="30", idempotency_key="in-flight")
                locked.set()
                time.sleep(0.5)  # the admin request loads the account meanwhile, then waits for the lock
        finally:
            connection.close()

    thread = threading.Thread(target=reserve_slowly)
    thread.start()
    assert locked.wait(timeout=10)
    response = client.post(url(CreditAccount, "change", account.pk), data)
    thread.join(timeout=10)

    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.held_units, account.daily_cap_units) == (300_000, 500_000)
    assert_ledger_consistent()


def test_changing_alert_levels_counts_those_already_crossed_as_notified(staff_client, alpha):
    fund(alpha.workspace, "40")
    account = account_of(alpha.workspace)

    staff_client.post(
        url(CreditAccount, "change", account.pk), _settings_form(staff_client, account, thresholds="50, 30, 10")
    )

    account.refresh_from_db()
    assert (account.alert_thresholds, account.alert_level) == ([500_000, 300_000, 100_000], 1)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"daily_cap": "-1"}, "daily_cap", "greater than or equal to 0.0001"),
        ({"monthly_cap": "0"}, "monthly_cap", "greater than or equal to 0.0001"),
        ({"daily_cap": "1.00001"}, "daily_cap", "4 decimal places"),
        ({"thresholds": "10, lots"}, "thresholds", "'lots' is not an amount"),
        ({"thresholds": "0"}, "thresholds", "greater than zero"),
    ],
)
def test_invalid_settings_are_form_errors(staff_client, alpha, changes, field, message):
    account = credits_account_open(workspace=alpha.workspace)
    before = CreditAccount.objects.filter(pk=account.pk).values().get()

    response = staff_client.post(
        url(CreditAccount, "change", account.pk), _settings_form(staff_client, account, **changes)
    )

    assert response.status_code == 200
    assert any(message in error for error in response.context["adminform"].form.errors[field])
    assert CreditAccount.objects.filter(pk=account.pk).values().get() == before


# ---------------------------------------------------------------------------- adjust balance


def _adjust(client: Client, account: CreditAccount, **data: Any) -> Any:
    form = client.get(url(CreditAccount, "adjust", account.pk)).context["form"]
    payload = {"key": form.initial["key"], "reason": "", "expires_at_0": "", "expires_at_1": "", **data}
    return client.post(url(CreditAccount, "adjust", account.pk), payload)


def test_change_page_links_to_adjust_balance(staff_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)

    body = staff_client.get(url(CreditAccount, "change", account.pk)).content.decode()

    assert url(CreditAccount, "adjust", account.pk) in body


def test_adjust_adds_credits_with_a_reason_and_an_audit_row(staff_client, staff, alpha):
    account = credits_account_open(workspace=alpha.workspace)

    response = _adjust(staff_client, account, amount="25.5", reason="Outage goodwill")

    assert response.status_code == 302
    assert response["Location"] == url(CreditAccount, "change", account.pk)
    assert account_of(alpha.workspace).available_units == 255_000
    grant = CreditGrant.objects.get(workspace=alpha.workspace)
    assert (grant.source, grant.reason, grant.created_by) == (Source.BONUS, "Outage goodwill", staff)
    assert LedgerEntry.objects.get(grant=grant).kind == EntryKind.ADJUST
    event = AuditEvent.objects.get(action="credits.adjust")
    assert (event.actor, event.workspace, event.metadata["reason"]) == (staff, alpha.workspace, "Outage goodwill")
    assert messages_of(response) == ["Adjusted Alpha by +25.5 credits; 25.5 available now."]
    assert_ledger_consistent()


def test_adjust_removes_available_credits(staff_client, alpha):
    fund(alpha.workspace, "100")
    account = account_of(alpha.workspace)

    response = _adjust(staff_client, account, amount="-40", reason="Duplicate purchase")

    assert response.status_code == 302
    assert account_of(alpha.workspace).available_units == 600_000
    assert messages_of(response) == ["Adjusted Alpha by -40 credits; 60 available now."]
    assert_ledger_consistent()


def test_adjust_below_the_available_balance_is_a_message_not_an_error_page(staff_client, alpha):
    fund(alpha.workspace, "10")
    credits_reserve(workspace=alpha.workspace, amount="4", idempotency_key="hold")
    account = account_of(alpha.workspace)

    response = _adjust(staff_client, account, amount="-8", reason="Chargeback")

    assert response.status_code == 200
    assert messages_of(response) == ["Not enough credits: 8 needed, 6 available."]
    assert response.context["form"].data["amount"] == "-8"  # kept for another try
    assert account_of(alpha.workspace).balance_units == 100_000
    assert not AuditEvent.objects.filter(action="credits.adjust").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"amount": "10", "reason": "  "}, "reason"),
        ({"amount": "0", "reason": "x"}, "amount"),
        ({"amount": "ten", "reason": "x"}, "amount"),
        ({"amount": "1.00001", "reason": "x"}, "amount"),
        ({"amount": "-5", "reason": "x", "expires_at_0": "2099-01-01", "expires_at_1": "00:00"}, "expires_at"),
        ({"amount": "5", "reason": "x", "expires_at_0": "2001-01-01", "expires_at_1": "00:00"}, "expires_at"),
    ],
)
def test_adjust_form_refuses_bad_input(staff_client, alpha, data, field):
    account = credits_account_open(workspace=alpha.workspace)

    response = _adjust(staff_client, account, **data)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not LedgerEntry.objects.exists()


def test_adjust_with_an_expiry(staff_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)

    _adjust(staff_client, account, amount="5", reason="Promo", expires_at_0="2099-06-30", expires_at_1="12:00")

    expires_at = CreditGrant.objects.get(workspace=alpha.workspace).expires_at
    assert expires_at is not None
    assert expires_at.date().isoformat() == "2099-06-30"


def test_submitting_the_adjust_form_twice_applies_it_once(staff_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)
    key = staff_client.get(url(CreditAccount, "adjust", account.pk)).context["form"].initial["key"]
    payload = {"key": key, "amount": "10", "reason": "Goodwill", "expires_at_0": "", "expires_at_1": ""}

    staff_client.post(url(CreditAccount, "adjust", account.pk), payload)
    staff_client.post(url(CreditAccount, "adjust", account.pk), payload)

    assert account_of(alpha.workspace).available_units == 100_000
    assert CreditGrant.objects.filter(workspace=alpha.workspace).count() == 1


def test_each_adjust_form_gets_its_own_key(staff_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)

    first = staff_client.get(url(CreditAccount, "adjust", account.pk)).context["form"].initial["key"]
    second = staff_client.get(url(CreditAccount, "adjust", account.pk)).context["form"].initial["key"]

    assert first != second


def test_adjust_needs_change_permission(viewer_client, alpha):
    account = credits_account_open(workspace=alpha.workspace)

    assert viewer_client.get(url(CreditAccount, "adjust", account.pk)).status_code == 403
    response = viewer_client.post(
        url(CreditAccount, "adjust", account.pk), {"amount": "1000", "reason": "x", "key": "k"}
    )
    assert response.status_code == 403
    assert not LedgerEntry.objects.exists()


def test_adjust_of_a_missing_account_redirects_to_the_list(staff_client):
    response = staff_client.get(url(CreditAccount, "adjust", 999_999))

    assert response.status_code == 302
    assert response["Location"] == url(CreditAccount, "changelist")


def test_adjust_action_opens_the_form_for_one_account(staff_client, alpha, beta):
    one = credits_account_open(workspace=alpha.workspace)
    two = credits_account_open(workspace=beta.workspace)

    single = staff_client.post(
        url(CreditAccount, "changelist"), {"action": "adjust_balance", "_selected_action": [one.pk]}
    )
    both = staff_client.post(
        url(CreditAccount, "changelist"),
        {"action": "adjust_balance", "_selected_action": [one.pk, two.pk]},
        follow=True,
    )

    assert single["Location"] == url(CreditAccount, "adjust", one.pk)
    assert "Select exactly one account to adjust." in messages_of(both)


# ---------------------------------------------------------------------------- grants


def _grant_form(client: Client, **data: Any) -> dict[str, Any]:
    form = client.get(url(CreditGrant, "add")).context["adminform"].form
    return {
        "idempotency_key": form.initial["idempotency_key"],
        "source": "bonus",
        "expires_at_0": "",
        "expires_at_1": "",
        "reference": "",
        **data,
    }


def test_adding_a_grant_goes_through_the_service(staff_client, staff, alpha):
    data = _grant_form(
        staff_client, workspace=alpha.workspace.pk, amount="75", reason="Referral", reference="promo-7", source="bonus"
    )

    response = staff_client.post(url(CreditGrant, "add"), data)

    assert response.status_code == 302
    grant = CreditGrant.objects.get(workspace=alpha.workspace)
    assert (grant.amount_units, grant.balance_units, grant.source) == (750_000, 750_000, Source.BONUS)
    assert (grant.reason, grant.reference, grant.created_by) == ("Referral", "promo-7", staff)
    assert grant.idempotency_key == data["idempotency_key"]
    assert LedgerEntry.objects.get(grant=grant).kind == EntryKind.GRANT
    assert account_of(alpha.workspace).available_units == 750_000
    event = AuditEvent.objects.get(action="credits.grant")
    assert (event.actor, event.workspace, event.metadata["reason"]) == (staff, alpha.workspace, "Referral")
    assert_ledger_consistent()


def test_add_form_generates_a_fresh_key_each_time(staff_client):
    first = staff_client.get(url(CreditGrant, "add")).context["adminform"].form.initial["idempotency_key"]
    second = staff_client.get(url(CreditGrant, "add")).context["adminform"].form.initial["idempotency_key"]

    assert first != second
    assert first.startswith("admin-grant:")


def test_adding_a_grant_with_an_expiry(staff_client, alpha):
    data = _grant_form(
        staff_client,
        workspace=alpha.workspace.pk,
        amount="5",
        reason="Trial extension",
        source="trial",
        expires_at_0="2099-01-31",
        expires_at_1="00:00",
    )

    staff_client.post(url(CreditGrant, "add"), data)

    grant = CreditGrant.objects.get(workspace=alpha.workspace)
    assert grant.expires_at is not None
    assert (grant.source, grant.expires_at.date().isoformat()) == (Source.TRIAL, "2099-01-31")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"amount": "0"}, "amount"),
        ({"amount": "-3"}, "amount"),
        ({"amount": "1.00001"}, "amount"),
        ({"source": "gift"}, "source"),
        ({"expires_at_0": "2001-01-01", "expires_at_1": "00:00"}, "expires_at"),
    ],
)
def test_grant_form_refuses_bad_input(staff_client, alpha, changes, field):
    data = _grant_form(staff_client, workspace=alpha.workspace.pk, amount="5", reason="x")
    data.update(changes)

    response = staff_client.post(url(CreditGrant, "add"), data)

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not CreditGrant.objects.exists()


def test_grant_form_refuses_a_deleted_workspace(staff_client, alpha):
    Workspace.objects.filter(pk=alpha.workspace.pk).update(deleted_at=timezone.now())
    data = _grant_form(staff_client, workspace=alpha.workspace.pk, amount="5", reason="x")

    response = staff_client.post(url(CreditGrant, "add"), data)

    assert "This workspace is deleted." in response.context["adminform"].form.errors["workspace"]
    assert not CreditGrant.objects.exists()


def test_sending_the_grant_form_twice_grants_once(staff_client, alpha):
    data = _grant_form(staff_client, workspace=alpha.workspace.pk, amount="5", reason="x")

    staff_client.post(url(CreditGrant, "add"), data)
    again = staff_client.post(url(CreditGrant, "add"), data)

    assert again.status_code == 200
    assert "already created" in str(again.context["adminform"].form.non_field_errors())
    assert CreditGrant.objects.filter(workspace=alpha.workspace).count() == 1


def test_a_grant_cannot_be_edited_or_deleted(staff_client, ledger, alpha):
    grant = CreditGrant.objects.filter(workspace=alpha.workspace).first()
    assert grant is not None

    page = staff_client.get(url(CreditGrant, "change", grant.pk))
    edit = staff_client.post(url(CreditGrant, "change", grant.pk), {"amount_units": 1, "reason": "oops"})
    delete = staff_client.post(url(CreditGrant, "delete", grant.pk), {"post": "yes"})

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert "1,234.5" in page.content.decode()
    assert (edit.status_code, delete.status_code) == (403, 403)
    grant.refresh_from_db()
    assert grant.amount_units == 12_345_000


def test_grants_filter_by_source_expiry_and_workspace(staff_client, alpha, beta):
    purchased = fund(alpha.workspace, "10", source=Source.PURCHASED)
    soon = fund(alpha.workspace, "10", source=Source.TRIAL, expires_at=timezone.now() + timedelta(days=2))
    later = fund(beta.workspace, "10", source=Source.SUBSCRIPTION, expires_at=timezone.now() + timedelta(days=30))

    def listed(**params: str) -> set[int]:
        return {g.pk for g in staff_client.get(url(CreditGrant, "changelist"), params).context["cl"].result_list}

    assert listed(source__exact="trial") == {soon.pk}
    assert listed(expiry="never") == {purchased.pk}
    assert listed(expiry="week") == {soon.pk}
    assert listed(expiry="later") == {later.pk}
    assert listed(workspace=beta.workspace.slug) == {later.pk}
    assert listed(workspace=str(alpha.workspace.pk)) == {purchased.pk, soon.pk}


# ---------------------------------------------------------------------------- ledger


def test_ledger_entries_are_read_only(staff_client, ledger):
    entry = LedgerEntry.objects.order_by("pk").first()
    assert entry is not None
    amount = entry.amount_units

    assert staff_client.get(url(LedgerEntry, "add")).status_code == 403
    assert staff_client.post(url(LedgerEntry, "change", entry.pk), {"amount_units": 1}).status_code == 403
    assert staff_client.post(url(LedgerEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    changelist = staff_client.get(url(LedgerEntry, "changelist"))
    assert changelist.context["action_form"] is None  # no bulk delete
    entry.refresh_from_db()
    assert entry.amount_units == amount


def test_ledger_filters_by_kind_workspace_and_date(staff_client, ledger, alpha, beta):
    def kinds(**params: str) -> list[str]:
        rows = staff_client.get(url(LedgerEntry, "changelist"), params).context["cl"].result_list
        return sorted(e.kind for e in rows)

    assert kinds(kind__exact="settle") == ["settle"]
    assert kinds(workspace=beta.workspace.slug) == ["grant"]
    assert kinds(workspace=alpha.workspace.slug, kind__exact="reserve") == ["reserve", "reserve"]
    tomorrow = (timezone.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    assert kinds(created_at__gte=tomorrow) == []
    assert len(kinds(created_at__lt=tomorrow)) == LedgerEntry.objects.count()


def test_the_workspace_filter_names_the_chosen_workspace_only(staff_client, ledger, alpha, beta):
    response = staff_client.get(url(LedgerEntry, "changelist"), {"workspace": alpha.workspace.pk})

    [spec] = [f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "workspace"]
    assert spec.lookup_choices == [(str(alpha.workspace.pk), "Alpha")]


# ---------------------------------------------------------------------------- reservations


def test_release_action_asks_for_a_reason_then_releases_held_ones(staff_client, staff, ledger, alpha):
    held, settled = ledger["held"], ledger["settled"]
    changelist = url(Reservation, "changelist")
    selected = {"action": "release_holds", "_selected_action": [held.pk, settled.pk]}

    confirm = staff_client.post(changelist, selected)
    assert confirm.status_code == 200
    assert [r.pk for r in confirm.context["reservations"]] == [held.pk]

    no_reason = staff_client.post(changelist, {**selected, "apply": "1", "reason": ""})
    assert no_reason.status_code == 200
    assert Reservation.objects.get(pk=held.pk).status == Reservation.Status.HELD

    done = staff_client.post(changelist, {**selected, "apply": "1", "reason": "Stuck provider call"}, follow=True)

    held.refresh_from_db()
    assert held.status == Reservation.Status.RELEASED
    assert held.outcome_reason == "released by staff: Stuck provider call"
    assert Reservation.objects.get(pk=settled.pk).status == Reservation.Status.SETTLED
    assert account_of(alpha.workspace).held_units == 0
    event = AuditEvent.objects.get(action="credits.release")
    assert (event.actor, event.target_id, event.workspace) == (staff, str(held.pk), alpha.workspace)
    assert event.metadata == {"reason": "Stuck provider call", "held_units": 200_000}
    assert messages_of(done) == [
        "Released 1 hold(s). 1 selected reservation(s) had already ended and were left as they are."
    ]
    assert_ledger_consistent()


def test_release_action_needs_permission(viewer_client, ledger):
    held = ledger["held"]

    response = viewer_client.post(
        url(Reservation, "changelist"),
        {"action": "release_holds", "_selected_action": [held.pk], "apply": "1", "reason": "x"},
    )

    assert response.status_code in (200, 302, 403)
    assert Reservation.objects.get(pk=held.pk).status == Reservation.Status.HELD


def test_reservations_are_read_only(staff_client, ledger):
    held = ledger["held"]

    assert staff_client.get(url(Reservation, "add")).status_code == 403
    assert staff_client.post(url(Reservation, "change", held.pk), {"status": "released"}).status_code == 403
    assert staff_client.post(url(Reservation, "delete", held.pk), {"post": "yes"}).status_code == 403
    assert Reservation.objects.get(pk=held.pk).status == Reservation.Status.HELD


def test_reservations_filter_by_status_and_search_by_key(staff_client, ledger):
    def keys(**params: str) -> list[str]:
        rows = staff_client.get(url(Reservation, "changelist"), params).context["cl"].result_list
        return sorted(r.idempotency_key for r in rows)

    assert keys(status__exact="held") == ["call-2"]
    assert keys(q="call-1") == ["call-1"]


# ---------------------------------------------------------------------------- rate cards


def _card_form(**data: Any) -> dict[str, Any]:
    blank = dict.fromkeys(
        ["input_per_1k", "output_per_1k", "cached_input_per_1k", "per_1k_characters", "per_minute", "per_unit"], ""
    )
    # The admin renders a hidden copy of the initial value of a field with a callable default.
    return {**blank, "per_image": "{}", "initial-per_image": "{}", **data}


def test_adding_a_rate_card_publishes_version_one(staff_client, staff):
    response = staff_client.post(
        url(RateCard, "add"),
        _card_form(service="text", model="gpt-4o-mini", input_per_1k="0.015", output_per_1k="0.06"),
    )

    assert response.status_code == 302
    card = RateCard.objects.get(model="gpt-4o-mini")
    assert (card.version, card.superseded_at, card.created_by) == (1, None, staff)
    assert card.input_per_1k == Decimal("0.015")
    assert AuditEvent.objects.filter(action="credits.rate_publish", actor=staff).count() == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"service": "text", "input_per_1k": "0", "output_per_1k": "1"}, "input_per_1k", "greater than zero"),
        ({"service": "text", "input_per_1k": "1"}, "output_per_1k", "is required"),
        ({"service": "text", "input_per_1k": "-1", "output_per_1k": "1", "is_free": "on"}, "input_per_1k", "negative"),
        ({"service": "image", "per_image": '{"1024x1024": "0"}'}, "per_image", "greater than zero"),
        ({"service": "image", "per_image": "{}"}, "per_image", "at least one image price"),
        ({"service": "speech"}, "__all__", "characters or credits per minute"),
    ],
)
def test_invalid_prices_are_form_errors(staff_client, data, field, message):
    response = staff_client.post(url(RateCard, "add"), _card_form(model="m", **data))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in error for error in errors.get(field, [])), errors
    assert not RateCard.objects.exists()


def test_a_free_model_may_be_priced_at_zero(staff_client):
    staff_client.post(
        url(RateCard, "add"),
        _card_form(service="text", model="local", is_free="on", input_per_1k="0", output_per_1k="0"),
    )

    assert RateCard.objects.get(model="local").is_free


def test_adding_a_second_card_for_a_priced_model_is_refused(staff_client):
    rate_card_publish(service=Service.TEXT, model="m", acting_user=None, input_per_1k="1", output_per_1k="1")

    response = staff_client.post(
        url(RateCard, "add"), _card_form(service="text", model="m", input_per_1k="2", output_per_1k="2")
    )

    assert "open its current card" in str(response.context["adminform"].form.non_field_errors())
    assert RateCard.objects.filter(model="m").count() == 1


def test_editing_a_card_publishes_a_new_version_and_keeps_the_old_row(staff_client, staff, ledger):
    old = ledger["card"]
    data = _card_form(input_per_1k="0.3", output_per_1k="1.2", cached_input_per_1k="0.15")

    response = staff_client.post(url(RateCard, "change", old.pk), data)

    assert response.status_code == 302
    new = RateCard.objects.current().get(service=Service.TEXT, model="gpt-4o")
    assert (new.version, new.input_per_1k, new.cached_input_per_1k) == (2, Decimal("0.3"), Decimal("0.15"))
    assert new.created_by == staff
    old.refresh_from_db()
    assert (old.input_per_1k, old.output_per_1k, old.superseded_at is not None) == (
        Decimal("0.25"),
        Decimal("1"),
        True,
    )
    assert Reservation.objects.get(pk=ledger["settled"].pk).rate_card_id == old.pk


def test_saving_a_card_without_changes_publishes_nothing(staff_client, ledger):
    card = ledger["card"]

    staff_client.post(url(RateCard, "change", card.pk), _card_form(input_per_1k="0.25", output_per_1k="1"))

    assert RateCard.objects.filter(model="gpt-4o").count() == 1


def test_an_invalid_edit_changes_nothing(staff_client, ledger):
    card = ledger["card"]

    response = staff_client.post(url(RateCard, "change", card.pk), _card_form(input_per_1k="0", output_per_1k="1"))

    assert response.status_code == 200
    assert "input_per_1k" in response.context["adminform"].form.errors
    assert RateCard.objects.filter(model="gpt-4o").count() == 1
    assert RateCard.objects.get(pk=card.pk).superseded_at is None


def test_a_superseded_version_is_read_only(staff_client, ledger):
    old = ledger["card"]
    rate_card_publish(service=Service.TEXT, model="gpt-4o", acting_user=None, input_per_1k="1", output_per_1k="1")

    page = staff_client.get(url(RateCard, "change", old.pk))
    edit = staff_client.post(url(RateCard, "change", old.pk), _card_form(input_per_1k="9", output_per_1k="9"))

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert edit.status_code == 403
    assert RateCard.objects.filter(model="gpt-4o").count() == 2


def test_rate_cards_list_shows_current_and_superseded(staff_client, ledger):
    rate_card_publish(service=Service.TEXT, model="gpt-4o", acting_user=None, input_per_1k="1", output_per_1k="1")

    def versions(**params: str) -> list[tuple[int, bool]]:
        rows = staff_client.get(url(RateCard, "changelist"), params).context["cl"].result_list
        return sorted((c.version, c.superseded_at is None) for c in rows)

    assert versions() == [(1, False), (2, True)]
    assert versions(status="current") == [(2, True)]
    assert versions(status="superseded") == [(1, False)]
    body = staff_client.get(url(RateCard, "changelist")).content.decode()
    assert "in/1K 0.25" in body
    assert 'alt="True"' in body
    assert 'alt="False"' in body


def test_rate_cards_cannot_be_deleted(staff_client, ledger):
    card = ledger["card"]

    assert staff_client.post(url(RateCard, "delete", card.pk), {"post": "yes"}).status_code == 403
    assert RateCard.objects.filter(pk=card.pk).exists()

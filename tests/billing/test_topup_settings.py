"""The automatic top-up settings, owned by billing: the service (validation, who may change
them, the audit row, the threshold pushed to the ledger as a watched level), the page owners
use, the admin, and the migration that moved them out of the credits account."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.billing.models import AutoTopup, CreditPack
from apps.billing.services import BillingError
from apps.billing.topup import TOPUP_WATCH, topup_settings_update
from apps.credits.models import CreditAccount
from apps.credits.services import credits_account_open
from apps.workspaces.exceptions import WorkspacePermissionDenied
from tests.conftest import Team
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGE = "billing:topup"
U = 10_000


def watch_levels(team: Team) -> dict[str, int]:
    return CreditAccount.objects.get(workspace=team.workspace).watch_levels


def topup_state(team: Team) -> tuple[Any, ...] | None:
    return (
        AutoTopup.objects.filter(workspace=team.workspace)
        .values_list("enabled", "threshold_units", "pack__code")
        .first()
    )


def _audits(team: Team) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="billing.auto_topup_update", workspace=team.workspace))


@pytest.fixture
def accounts(alpha: Team, beta: Team) -> None:
    credits_account_open(workspace=alpha.workspace)
    credits_account_open(workspace=beta.workspace)


# ---------------------------------------------------------------------------- service


def test_an_owner_turns_auto_top_up_on_and_the_ledger_watches_the_threshold(alpha, catalogue, accounts):
    pack = catalogue["packs"]["small"]

    topup = topup_settings_update(
        workspace=alpha.workspace, acting_user=alpha.owner, enabled=True, threshold_units=20 * U, pack=pack
    )

    assert (topup.enabled, topup.threshold_units, topup.pack) == (True, 20 * U, pack)
    assert watch_levels(alpha) == {TOPUP_WATCH: 20 * U}
    [event] = _audits(alpha)
    assert event.actor == alpha.owner
    assert event.metadata["changes"] == {
        "enabled": {"from": False, "to": True},
        "threshold_units": {"from": None, "to": 20 * U},
        "pack": {"from": "", "to": "small"},
    }


def test_turning_it_off_stops_the_watch_and_keeps_the_choices(alpha, catalogue, accounts):
    pack = catalogue["packs"]["small"]
    topup_settings_update(
        workspace=alpha.workspace, acting_user=alpha.owner, enabled=True, threshold_units=20 * U, pack=pack
    )

    topup_settings_update(
        workspace=alpha.workspace, acting_user=alpha.owner, enabled=False, threshold_units=20 * U, pack=pack
    )

    assert topup_state(alpha) == (False, 20 * U, "small")
    assert watch_levels(alpha) == {}
    assert len(_audits(alpha)) == 2


def test_saving_the_same_settings_writes_no_audit_row(alpha, catalogue, accounts):
    fields = {"enabled": True, "threshold_units": 20 * U, "pack": catalogue["packs"]["small"]}
    topup_settings_update(workspace=alpha.workspace, acting_user=alpha.owner, **fields)
    topup_settings_update(workspace=alpha.workspace, acting_user=alpha.owner, **fields)

    assert len(_audits(alpha)) == 1


@pytest.mark.parametrize(
    ("enabled", "threshold", "pack_code"),
    [(True, None, "small"), (True, 20 * U, None), (True, 0, "small"), (False, -1, None), (True, 20 * U, "retired")],
)
def test_refuses_incomplete_or_invalid_settings_and_saves_nothing(
    alpha, catalogue, accounts, enabled, threshold, pack_code
):
    CreditPack.objects.create(code="retired", name="Retired", credit_units=U, price_cents=100, is_active=False)
    pack = CreditPack.objects.get(code=pack_code) if pack_code else None

    with pytest.raises(BillingError):
        topup_settings_update(
            workspace=alpha.workspace, acting_user=alpha.owner, enabled=enabled, threshold_units=threshold, pack=pack
        )

    assert topup_state(alpha) in (None, (False, None, None))
    assert watch_levels(alpha) == {}
    assert _audits(alpha) == []


@pytest.mark.parametrize("who", ["alpha_admin", "alpha_member", "beta_owner"])
def test_only_the_workspaces_owners_change_it(alpha, beta, catalogue, accounts, who):
    team, role = (
        (alpha, "admin") if who == "alpha_admin" else (alpha, "member") if who == "alpha_member" else (beta, "owner")
    )
    user = getattr(team, role)

    with pytest.raises(WorkspacePermissionDenied):
        topup_settings_update(
            workspace=alpha.workspace,
            acting_user=user,
            enabled=True,
            threshold_units=20 * U,
            pack=catalogue["packs"]["small"],
        )

    assert topup_state(alpha) is None
    assert watch_levels(alpha) == {}


def test_the_back_office_needs_staff(alpha, catalogue, accounts):
    fields = {"enabled": True, "threshold_units": 20 * U, "pack": catalogue["packs"]["small"]}
    with pytest.raises(BillingError):
        topup_settings_update(workspace=alpha.workspace, acting_user=alpha.owner, as_staff=True, **fields)

    staff = UserFactory.create(is_staff=True)
    topup_settings_update(workspace=alpha.workspace, acting_user=staff, as_staff=True, **fields)

    assert topup_state(alpha) == (True, 20 * U, "small")
    assert _audits(alpha)[0].metadata["via"] == "admin"


# ---------------------------------------------------------------------------- page


def _post(**overrides: str) -> dict[str, str]:
    data = {"auto_topup_enabled": "on", "auto_topup_threshold": "20", "auto_topup_pack": "small"}
    data.update(overrides)
    return data


def test_an_owner_sees_the_packs_for_sale_and_saves(client_for, alpha, catalogue, accounts):
    CreditPack.objects.create(code="retired", name="Retired pack", credit_units=U, price_cents=100, is_active=False)
    client = client_for(alpha.owner, alpha.workspace)

    page = client.get(reverse(PAGE))
    saved = client.post(reverse(PAGE), _post())

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="auto_topup_pack"' in html
    assert 'value="small"' in html
    assert "Retired pack" not in html
    assert saved.status_code == 302
    assert saved["Location"] == reverse(PAGE)
    assert topup_state(alpha) == (True, 20 * U, "small")
    assert watch_levels(alpha) == {TOPUP_WATCH: 20 * U}
    shown = client.get(reverse(PAGE)).content.decode()
    assert 'value="20"' in shown
    assert "Automatic top-up saved." in shown


def test_the_pack_is_chosen_from_a_list_not_typed(client_for, alpha, catalogue, accounts):
    html = client_for(alpha.owner, alpha.workspace).get(reverse(PAGE)).content.decode()

    select = html.split('name="auto_topup_pack"')[1].split("</select>")[0]
    assert '<select name="auto_topup_pack"' in html
    assert '<input type="text" name="auto_topup_pack"' not in html
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "small", "medium", "large"]
    assert "Choose a pack" in select
    assert "credits for $" in select  # each pack with what it gives and costs


def test_a_pack_no_longer_for_sale_stays_chosen_and_can_be_kept(client_for, alpha, catalogue, accounts):
    small = catalogue["packs"]["small"]
    topup_settings_update(
        workspace=alpha.workspace, acting_user=alpha.owner, enabled=True, threshold_units=20 * U, pack=small
    )
    CreditPack.objects.filter(pk=small.pk).update(is_active=False)
    client = client_for(alpha.owner, alpha.workspace)

    html = client.get(reverse(PAGE)).content.decode()
    saved = client.post(reverse(PAGE), _post(auto_topup_threshold="30"))  # the pack left as it was

    select = html.split('name="auto_topup_pack"')[1].split("</select>")[0]
    assert re.search(r'<option value="small" selected>[^<]*\(no longer for sale\)</option>', select)
    assert saved.status_code == 302
    assert topup_state(alpha) == (True, 30 * U, "small")


def test_a_pack_no_longer_for_sale_is_offered_only_where_it_was_chosen(client_for, alpha, beta, catalogue, accounts):
    small = catalogue["packs"]["small"]
    topup_settings_update(
        workspace=alpha.workspace, acting_user=alpha.owner, enabled=True, threshold_units=20 * U, pack=small
    )
    CreditPack.objects.filter(pk=small.pk).update(is_active=False)
    client = client_for(beta.owner, beta.workspace)

    html = client.get(reverse(PAGE)).content.decode()
    refused = client.post(reverse(PAGE), _post())

    assert 'value="small"' not in html.split('name="auto_topup_pack"')[1].split("</select>")[0]
    assert refused.status_code == 400
    assert topup_state(beta) is None


def test_a_pack_not_for_sale_cannot_be_switched_to(client_for, alpha, catalogue, accounts):
    CreditPack.objects.create(code="retired", name="Retired", credit_units=U, price_cents=100, is_active=False)

    response = client_for(alpha.owner, alpha.workspace).post(reverse(PAGE), _post(auto_topup_pack="retired"))

    assert response.status_code == 400
    assert "Choose one of the credit packs for sale." in response.content.decode()
    assert topup_state(alpha) is None


def test_without_packs_for_sale_the_page_says_so(client_for, alpha, catalogue, accounts, fake_stripe):
    CreditPack.objects.update(is_active=False)

    html = client_for(alpha.owner, alpha.workspace).get(reverse(PAGE)).content.decode()

    assert 'data-testid="no-packs"' in html
    assert "No credit packs are for sale yet" in html


def test_an_admin_sees_the_setting_and_may_not_change_it(client_for, alpha, catalogue, accounts):
    topup_settings_update(
        workspace=alpha.workspace,
        acting_user=alpha.owner,
        enabled=True,
        threshold_units=20 * U,
        pack=catalogue["packs"]["small"],
    )
    client = client_for(alpha.admin, alpha.workspace)

    page = client.get(reverse(PAGE))
    refused = client.post(reverse(PAGE), _post(auto_topup_threshold="5"))

    assert page.status_code == 200
    assert 'data-testid="topup-readonly"' in page.content.decode()
    assert 'name="auto_topup_pack"' not in page.content.decode()
    assert refused.status_code == 403
    assert topup_state(alpha) == (True, 20 * U, "small")


def test_a_member_may_not_open_it(client_for, alpha, catalogue, accounts):
    client = client_for(alpha.member, alpha.workspace)

    assert client.get(reverse(PAGE)).status_code == 403
    assert client.post(reverse(PAGE), _post()).status_code == 403
    assert topup_state(alpha) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_post(auto_topup_pack=""), "Choose the pack to buy."),
        (_post(auto_topup_threshold=""), "Give the balance that triggers a top-up."),
        (_post(auto_topup_pack="<script>"), "Choose one of the credit packs for sale."),
        (_post(auto_topup_threshold="-5"), "Give an amount greater than zero"),
    ],
)
def test_invalid_settings_answer_400_and_save_nothing(client_for, alpha, catalogue, accounts, data, message):
    response = client_for(alpha.owner, alpha.workspace).post(reverse(PAGE), data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert topup_state(alpha) is None
    assert _audits(alpha) == []


@pytest.mark.outsider(PAGE)
@pytest.mark.parametrize("who", ["outsider", "beta_owner"])
def test_someone_outside_alpha_never_sees_or_changes_its_top_up(client_for, alpha, beta, outsider, catalogue, who):
    from apps.workspaces.services import workspace_create_personal

    topup_settings_update(
        workspace=alpha.workspace,
        acting_user=alpha.owner,
        enabled=True,
        threshold_units=77 * U,
        pack=catalogue["packs"]["large"],
    )
    if who == "outsider":
        client = client_for(outsider, alpha.workspace)  # asks for Alpha; not a member of it
        workspace_create_personal(user=outsider)
    else:
        client = client_for(beta.owner, beta.workspace)

    page = client.get(reverse(PAGE))
    client.post(reverse(PAGE), _post(auto_topup_threshold="1"))

    html = page.content.decode()
    assert 'value="large" selected' not in html  # every owner may choose it; nobody sees alpha's choice
    assert 'value="77"' not in html
    assert "77 credits" not in html
    assert topup_state(alpha) == (True, 77 * U, "large")
    assert watch_levels(alpha) == {TOPUP_WATCH: 77 * U}


# ---------------------------------------------------------------------------- admin


def test_staff_set_it_in_the_admin_through_the_service(alpha, catalogue, accounts):
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    response = client.post(
        reverse("admin:billing_autotopup_add"),
        {"workspace": alpha.workspace.pk, "enabled": "on", "threshold": "12.5", "pack": catalogue["packs"]["small"].pk},
    )

    assert response.status_code == 302
    assert topup_state(alpha) == (True, 125_000, "small")
    assert watch_levels(alpha) == {TOPUP_WATCH: 125_000}
    [event] = _audits(alpha)
    assert (event.actor, event.metadata["via"]) == (staff, "admin")


def test_the_admin_refuses_an_incomplete_top_up(alpha, catalogue, accounts):
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))

    response = client.post(reverse("admin:billing_autotopup_add"), {"workspace": alpha.workspace.pk, "enabled": "on"})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Set the level" in errors["threshold"][0]
    assert "Choose the credit pack" in errors["pack"][0]
    assert topup_state(alpha) is None


# ---------------------------------------------------------------------------- the move out of credits


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_each_accounts_settings_to_billing_with_the_pack_as_a_key(alpha, beta, outsider):
    """Back to before the move, settings as credits stored them (free text), then forward."""
    from apps.workspaces.services import workspace_create_personal

    third = workspace_create_personal(user=outsider)
    before_move = [("credits", "0003_watch_levels"), ("billing", "0002_card_updated_at")]
    executor = MigrationExecutor(connection)
    executor.migrate(before_move)
    old = executor.loader.project_state(before_move).apps
    old.get_model("billing", "CreditPack").objects.create(code="small", name="Small", credit_units=U, price_cents=100)
    accounts = old.get_model("credits", "CreditAccount").objects
    for workspace, enabled, threshold, code in (
        (alpha.workspace, True, 20 * U, " Small "),  # the pack code as someone typed it
        (beta.workspace, True, 30 * U, "no-such-pack"),
        (third, False, 40 * U, "small"),
    ):
        accounts.update_or_create(
            workspace_id=workspace.pk,
            defaults={"auto_topup_enabled": enabled, "auto_topup_threshold_units": threshold, "auto_topup_pack": code},
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = {
        row["workspace_id"]: (row["enabled"], row["threshold_units"], row["pack__code"])
        for row in AutoTopup.objects.values("workspace_id", "enabled", "threshold_units", "pack__code")
    }
    assert moved == {
        alpha.workspace.pk: (True, 20 * U, "small"),
        beta.workspace.pk: (False, 30 * U, None),  # a code naming no pack never bought anything: off
        third.pk: (False, 40 * U, "small"),
    }
    levels = dict(CreditAccount.objects.values_list("workspace_id", "watch_levels"))
    assert levels[alpha.workspace.pk] == {TOPUP_WATCH: 20 * U}
    assert levels[beta.workspace.pk] == levels[third.pk] == {}


def test_billing_errors_are_domain_errors_with_a_4xx_status_and_a_stable_code(alpha, catalogue, accounts):
    from apps.core.errors import DomainError

    with pytest.raises(BillingError) as refused:
        topup_settings_update(
            workspace=alpha.workspace, acting_user=alpha.owner, enabled=True, threshold_units=None, pack=None
        )

    assert isinstance(refused.value, DomainError)
    assert (refused.value.status_code, refused.value.code) == (400, "billing_refused")
    assert refused.value.message == "Automatic top-up needs a threshold and a credit pack."

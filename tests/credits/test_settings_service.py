"""credits_settings_update: validation, permissions, audit rows."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.credits.exceptions import CreditsError
from apps.credits.models import CreditAccount
from apps.credits.services import credits_account_open
from apps.credits.settings_service import credits_settings_update
from apps.workspaces.exceptions import WorkspacePermissionDenied
from tests.credits.usage_data import fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(alpha) -> CreditAccount:
    return credits_account_open(workspace=alpha.workspace)


def _events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="credits.settings_update"))


def _reload(account: CreditAccount) -> CreditAccount:
    return CreditAccount.objects.get(pk=account.pk)


def test_saves_caps_and_sorted_unique_thresholds(alpha, account):
    credits_settings_update(
        account=account,
        acting_user=alpha.admin,
        daily_cap_units=10_000,
        member_monthly_cap_units=50_000,
        alert_thresholds=[10_000, 500_000, 10_000],
    )

    saved = _reload(account)
    assert (saved.daily_cap_units, saved.member_monthly_cap_units) == (10_000, 50_000)
    assert saved.alert_thresholds == [500_000, 10_000]
    [event] = _events()
    assert event.actor == alpha.admin
    assert event.workspace == alpha.workspace
    assert event.target_id == str(account.pk)
    assert event.metadata["changes"]["alert_thresholds"]["to"] == [500_000, 10_000]


def test_a_change_to_nothing_writes_no_audit_row(alpha, account):
    credits_settings_update(account=account, acting_user=alpha.owner, daily_cap_units=10_000)
    credits_settings_update(account=account, acting_user=alpha.owner, daily_cap_units=10_000)

    assert len(_events()) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"daily_cap_units": 0},
        {"monthly_cap_units": -1},
        {"member_daily_cap_units": "100"},
        {"member_daily_cap_units": 1.5},
        {"daily_cap_units": True},
        {"daily_cap_units": 10**19},
        {"alert_thresholds": "100"},
        {"alert_thresholds": [100, 0]},
        {"alert_thresholds": list(range(1, 12))},
    ],
)
def test_refuses_invalid_limits_and_saves_nothing(alpha, account, fields):
    before = _reload(account)

    with pytest.raises(CreditsError):
        credits_settings_update(account=account, acting_user=alpha.owner, **fields)

    after = _reload(account)
    assert (after.daily_cap_units, after.monthly_cap_units, after.alert_thresholds) == (
        before.daily_cap_units,
        before.monthly_cap_units,
        before.alert_thresholds,
    )
    assert _events() == []


def test_member_may_change_no_setting(alpha, account):
    with pytest.raises(WorkspacePermissionDenied):
        credits_settings_update(account=account, acting_user=alpha.member, daily_cap_units=1)

    assert _reload(account).daily_cap_units is None


def test_someone_from_another_workspace_may_change_nothing(alpha, beta, account):
    with pytest.raises(WorkspacePermissionDenied):
        credits_settings_update(account=account, acting_user=beta.owner, daily_cap_units=1)

    assert _reload(account).daily_cap_units is None


def test_unknown_setting_is_a_programming_error(alpha, account):
    with pytest.raises(TypeError):
        credits_settings_update(account=account, acting_user=alpha.owner, balance_units=10**9)


def test_new_thresholds_the_balance_is_already_below_count_as_notified(alpha, account):
    fund(alpha.workspace, "50")

    credits_settings_update(account=account, acting_user=alpha.owner, alert_thresholds=[1_000_000, 100_000])

    # 50 credits: below 100, above 10 → one threshold already crossed, not news.
    assert _reload(account).alert_level == 1

"""Monthly credits of plans not billed through Stripe (the free plan, staff and code
assignments): once per workspace and calendar month, replacing the previous month's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.billing.codes import billing_code_redeem
from apps.billing.fulfilment import add_months
from apps.billing.models import BillingAccount, Plan, PlanSource, RedemptionCode, SubscriptionStatus
from apps.billing.services import (
    billing_plan_assign,
    billing_plan_credits_start,
    billing_plan_monthly_credits,
    month_start,
    plan_month_key,
)
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_grant
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_create, workspace_create_personal

pytestmark = pytest.mark.django_db

NOW = datetime.now(tz=UTC)


def subscription_units(workspace: Workspace) -> int:
    grants = credits_balance(workspace=workspace, with_grants=True).grants
    return sum(g.available_units for g in grants if g.source == Source.SUBSCRIPTION)


def test_free_plan_workspaces_get_their_monthly_credits_once_a_month(alpha, beta, catalogue):
    free, pro = catalogue["plans"]["free"], catalogue["plans"]["professional"]
    # Staff-assigned: its own credits, at once (the task then has nothing to give it this month).
    billing_plan_assign(workspace=beta.workspace, plan=pro, acting_user=None)
    assert subscription_units(beta.workspace) == pro.monthly_credit_units
    credits_grant(workspace=alpha.workspace, amount="10", source=Source.PURCHASED, idempotency_key="bought")

    assert billing_plan_monthly_credits(now=NOW) == 1  # alpha (made by a factory, before any plan)
    assert billing_plan_monthly_credits(now=NOW) == 0  # once this month
    assert subscription_units(alpha.workspace) == free.monthly_credit_units
    assert subscription_units(beta.workspace) == pro.monthly_credit_units
    grant = CreditGrant.objects.get(workspace=alpha.workspace, source=Source.SUBSCRIPTION)
    assert grant.expires_at is not None
    assert grant.expires_at.day == 1


def test_stripe_subscribers_are_left_to_their_invoices(alpha, catalogue):
    BillingAccount.objects.create(
        workspace=alpha.workspace,
        plan=catalogue["plans"]["starter"],
        plan_source=PlanSource.STRIPE,
        subscription_id="sub_1",
        subscription_status=SubscriptionStatus.ACTIVE,
    )
    billing_plan_monthly_credits(now=NOW)
    assert subscription_units(alpha.workspace) == 0


def test_nothing_is_granted_when_no_plan_has_monthly_credits(alpha, catalogue):
    Plan.objects.update(monthly_credit_units=0)
    assert billing_plan_monthly_credits(now=NOW) == 0


# ---------------------------------------------------------------------------- at once, not at the next run


def _subscription_grants(workspace: Workspace) -> list[CreditGrant]:
    return list(CreditGrant.objects.filter(workspace=workspace, source=Source.SUBSCRIPTION).order_by("id"))


def _redeem(workspace: Workspace, user: User, plan: Plan, code: str) -> None:
    RedemptionCode.objects.create(code=code, plan=plan, plan_days=30)
    billing_code_redeem(workspace=workspace, acting_user=user, code=code)


def test_a_new_workspace_has_the_free_plans_credits_at_once(catalogue, outsider):
    free = catalogue["plans"]["free"]

    workspace = workspace_create_personal(user=outsider)

    assert subscription_units(workspace) == free.monthly_credit_units
    [grant] = _subscription_grants(workspace)
    month = month_start(timezone.now())
    assert grant.idempotency_key == plan_month_key(workspace_id=workspace.pk, plan=free, month=month)
    assert grant.expires_at == add_months(month, 1)
    assert grant.reason == f"Free: credits for {month:%B %Y}"
    assert not credits_balance(workspace=workspace).low  # no "low on credits" banner on day one


def test_every_new_workspace_gets_them_not_only_the_personal_one(catalogue, outsider):
    workspace_create_personal(user=outsider)

    team = workspace_create(acting_user=outsider, name="Team")

    assert subscription_units(team) == catalogue["plans"]["free"].monthly_credit_units


def test_a_second_trigger_in_the_same_month_grants_nothing(catalogue, outsider):
    workspace = workspace_create_personal(user=outsider)

    assert billing_plan_credits_start(workspace=workspace, account=None) is None
    assert billing_plan_assign(workspace=workspace, plan=None, acting_user=None)  # back to the default: same plan

    assert len(_subscription_grants(workspace)) == 1
    assert subscription_units(workspace) == catalogue["plans"]["free"].monthly_credit_units


def test_the_monthly_task_afterwards_grants_nothing_more_that_month(catalogue, outsider):
    workspace = workspace_create_personal(user=outsider)

    assert billing_plan_monthly_credits() == 0
    assert len(_subscription_grants(workspace)) == 1
    # Next month the task grants the month's credits again, replacing what is left.
    next_month = add_months(month_start(timezone.now()), 1) + timedelta(hours=1)
    assert billing_plan_monthly_credits(now=next_month) == 1
    assert billing_plan_monthly_credits(now=next_month) == 0


def test_a_plan_change_by_redemption_grants_the_new_plans_credits_once(catalogue, outsider):
    free, pro = catalogue["plans"]["free"], catalogue["plans"]["professional"]
    workspace = workspace_create_personal(user=outsider)

    _redeem(workspace, outsider, pro, "PRO-ONE")

    # Pro's month replaces what was left of Free's.
    assert subscription_units(workspace) == pro.monthly_credit_units
    assert [g.idempotency_key for g in _subscription_grants(workspace)] == [
        plan_month_key(workspace_id=workspace.pk, plan=plan, month=month_start(timezone.now())) for plan in (free, pro)
    ]
    # Another code for the same plan, this month: the plan is extended, its credits not given again.
    _redeem(workspace, outsider, pro, "PRO-TWO")
    assert len(_subscription_grants(workspace)) == 2
    assert billing_plan_monthly_credits() == 0
    assert subscription_units(workspace) == pro.monthly_credit_units


def test_staff_moving_a_workspace_to_a_plan_grants_its_credits_at_once(catalogue, alpha):
    starter = catalogue["plans"]["starter"]

    billing_plan_assign(workspace=alpha.workspace, plan=starter, acting_user=None, days=7)

    assert subscription_units(alpha.workspace) == starter.monthly_credit_units
    assert billing_plan_monthly_credits() == 0  # alpha already has this month's


def test_a_stripe_subscriber_gets_its_credits_from_its_invoices_only(catalogue, alpha):
    account = BillingAccount.objects.create(
        workspace=alpha.workspace,
        plan=catalogue["plans"]["starter"],
        plan_source=PlanSource.STRIPE,
        subscription_id="sub_1",
        subscription_status=SubscriptionStatus.ACTIVE,
    )

    assert billing_plan_credits_start(workspace=alpha.workspace, account=account) is None
    assert subscription_units(alpha.workspace) == 0


def test_without_plans_a_new_workspace_gets_no_plan_credits(outsider):
    workspace = workspace_create_personal(user=outsider)

    assert _subscription_grants(workspace) == []


def test_a_month_granted_under_the_old_key_is_not_granted_again(catalogue, alpha):
    month = month_start(timezone.now())
    credits_grant(
        workspace=alpha.workspace,
        amount="50",
        source=Source.SUBSCRIPTION,
        idempotency_key=f"plan-month:{month:%Y-%m}:{alpha.workspace.pk}",  # as keys were before they named the plan
    )

    billing_plan_monthly_credits()

    assert len(_subscription_grants(alpha.workspace)) == 1

"""Monthly credits of plans not billed through Stripe (the free plan, staff and code
assignments): once per workspace and calendar month, replacing the previous month's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.billing.models import BillingAccount, Plan, PlanSource, SubscriptionStatus
from apps.billing.services import billing_plan_assign, billing_plan_monthly_credits
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_grant
from apps.workspaces.models import Workspace

pytestmark = pytest.mark.django_db

NOW = datetime.now(tz=UTC)


def subscription_units(workspace: Workspace) -> int:
    grants = credits_balance(workspace=workspace, with_grants=True).grants
    return sum(g.available_units for g in grants if g.source == Source.SUBSCRIPTION)


def test_free_plan_workspaces_get_their_monthly_credits_once_a_month(alpha, beta, catalogue):
    free, pro = catalogue["plans"]["free"], catalogue["plans"]["professional"]
    billing_plan_assign(workspace=beta.workspace, plan=pro, acting_user=None)  # staff-assigned: its own credits
    credits_grant(workspace=alpha.workspace, amount="10", source=Source.PURCHASED, idempotency_key="bought")

    assert billing_plan_monthly_credits(now=NOW) == 2
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

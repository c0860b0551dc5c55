"""Redemption codes: batches of unambiguous random codes, redeemed once per workspace and at
most `max_redemptions` times in all (also when redeemed at the same moment), granting credits
and/or a plan for some days, never overriding a Stripe subscription's plan."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.billing.codes import ALPHABET, CodeError, billing_code_redeem, billing_codes_create
from apps.billing.entitlements import plan_for, workspace_entitlements
from apps.billing.models import (
    BillingAccount,
    Fulfilment,
    PlanSource,
    Redemption,
    RedemptionCode,
    SubscriptionStatus,
)
from apps.billing.services import billing_plan_expire
from apps.credits.amounts import to_units
from apps.credits.models import CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.workspaces.models import Workspace
from tests.concurrency import run_together
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

CODE_RE = re.compile(rf"[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}")


def available(workspace: Any) -> int:
    return credits_balance(workspace=workspace).available_units


def make(count: int = 1, **kwargs: Any) -> list[RedemptionCode]:
    kwargs.setdefault("credits", Decimal("50"))
    kwargs.setdefault("plan", None)
    kwargs.setdefault("plan_days", 0)
    kwargs.setdefault("max_redemptions", 1)
    kwargs.setdefault("expires_at", None)
    kwargs.setdefault("batch", "launch")
    kwargs.setdefault("acting_user", None)
    return billing_codes_create(count=count, **kwargs)


def one(**kwargs: Any) -> RedemptionCode:
    return make(1, **kwargs)[0]


def plan_code(workspace: Workspace | int) -> str:
    plan = plan_for(workspace)
    assert plan is not None
    return plan.code


# ---------------------------------------------------------------------------- creating


def test_creates_a_batch_of_distinct_unambiguous_codes_and_audits_it(alpha):
    staff = UserFactory.create(is_staff=True)
    codes = make(200, credits=Decimal("12.5"), max_redemptions=3, batch="spring", acting_user=staff)

    assert len({c.code for c in codes}) == 200
    assert all(CODE_RE.fullmatch(c.code) for c in codes)
    stored = RedemptionCode.objects.filter(batch="spring")
    assert stored.count() == 200
    assert set(stored.values_list("credit_units", "max_redemptions", "redeemed_count", "created_by")) == {
        (to_units("12.5"), 3, 0, staff.pk)
    }
    audit = AuditEvent.objects.get(action="billing.codes_create")
    assert audit.actor == staff
    assert audit.metadata["count"] == 200
    assert audit.metadata["batch"] == "spring"


def test_prefix_is_kept_in_front_of_the_code(db):
    code = one(prefix="launch")
    assert re.fullmatch(rf"LAUNCH-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code.code)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "between 1"),
        ({"credits": None}, "credits, a plan, or both"),
        ({"credits": Decimal("-1")}, "negative"),
        ({"credits": Decimal("0.00001")}, "4 decimal places"),
        ({"max_redemptions": 0}, "at least once"),
        ({"expires_at": "past"}, "future"),
        ({"prefix": "no spaces!"}, "prefix"),
    ],
)
def test_refuses_a_batch_that_makes_no_sense(db, kwargs, message):
    if kwargs.get("expires_at") == "past":
        kwargs["expires_at"] = timezone.now() - timedelta(minutes=1)
    count = kwargs.pop("count", 1)

    with pytest.raises(CodeError, match=message):
        make(count, **kwargs)
    assert not RedemptionCode.objects.exists()


def test_a_plan_code_needs_days(catalogue):
    with pytest.raises(CodeError, match="days"):
        one(credits=None, plan=catalogue["plans"]["starter"], plan_days=0)


# ---------------------------------------------------------------------------- redeeming


def test_redeeming_grants_bonus_credits_once_with_a_fulfilment_and_an_audit_row(alpha):
    code = one(credits=Decimal("50"))

    redemption = billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.member, code=code.code)

    assert available(alpha.workspace) == to_units(50)
    grant = CreditGrant.objects.get(workspace=alpha.workspace)
    assert (grant.source, grant.idempotency_key, grant.created_by) == (
        Source.BONUS,
        f"redeem:{code.pk}:{alpha.workspace.pk}",
        alpha.member,
    )
    assert redemption.grant == grant
    assert redemption.user == alpha.member
    fulfilment = Fulfilment.objects.get(workspace=alpha.workspace)
    assert (fulfilment.kind, fulfilment.key, fulfilment.credit_units, fulfilment.grant) == (
        Fulfilment.Kind.REDEMPTION,
        f"redeem:{code.pk}:{alpha.workspace.pk}",
        to_units(50),
        grant,
    )
    code.refresh_from_db()
    assert code.redeemed_count == 1
    audit = AuditEvent.objects.get(action="billing.code_redeem")
    assert (audit.actor, audit.workspace, audit.metadata["code"]) == (alpha.member, alpha.workspace, code.code)


def test_lookup_ignores_case_and_surrounding_spaces(alpha):
    code = one()

    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=f"  {code.code.lower()} ")

    assert available(alpha.workspace) == to_units(50)


def test_a_plan_code_puts_the_workspace_on_the_plan_for_its_days(alpha, catalogue):
    professional = catalogue["plans"]["professional"]
    code = one(credits=None, plan=professional, plan_days=30)
    assert workspace_entitlements(alpha.workspace).plan_code == "free"
    assert workspace_entitlements(alpha.workspace).voice_cloning is False

    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    entitlements = workspace_entitlements(alpha.workspace)
    assert (entitlements.plan_code, entitlements.voice_cloning) == ("professional", True)
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert account.plan_source == PlanSource.CODE
    assert account.plan_expires_at is not None
    assert timedelta(days=29, hours=23) < account.plan_expires_at - timezone.now() <= timedelta(days=30)
    # The plan's credits for this month come with it, not at the next run of the monthly task.
    assert available(alpha.workspace) == professional.monthly_credit_units
    fulfilment = Fulfilment.objects.get(workspace=alpha.workspace, kind=Fulfilment.Kind.REDEMPTION)
    assert fulfilment.period_end == account.plan_expires_at
    assert AuditEvent.objects.filter(action="billing.plan_assign", workspace=alpha.workspace).exists()

    # After the days, back to the default plan.
    billing_plan_expire(now=timezone.now() + timedelta(days=31))
    assert plan_code(alpha.workspace.pk) == "free"


def test_a_code_with_credits_and_a_plan_grants_both(alpha, catalogue):
    code = one(credits=Decimal("10"), plan=catalogue["plans"]["starter"], plan_days=7)

    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    assert available(alpha.workspace) == to_units(10) + catalogue["plans"]["starter"].monthly_credit_units
    assert plan_code(alpha.workspace) == "starter"


def _subscribed(workspace: Any, plan: Any) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(workspace=workspace)
    account.plan = plan
    account.plan_source = PlanSource.STRIPE
    account.subscription_id = "sub_1"
    account.subscription_status = SubscriptionStatus.ACTIVE
    account.save()
    return account


def test_a_plan_only_code_is_refused_while_a_stripe_subscription_holds_the_plan(alpha, catalogue):
    _subscribed(alpha.workspace, catalogue["plans"]["starter"])
    code = one(credits=None, plan=catalogue["plans"]["professional"], plan_days=30)

    with pytest.raises(CodeError, match="subscription"):
        billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    assert plan_code(alpha.workspace) == "starter"
    code.refresh_from_db()
    assert code.redeemed_count == 0
    assert not Redemption.objects.exists()


def test_a_code_with_credits_grants_only_them_under_a_stripe_subscription(alpha, catalogue):
    _subscribed(alpha.workspace, catalogue["plans"]["starter"])
    code = one(credits=Decimal("20"), plan=catalogue["plans"]["professional"], plan_days=30)

    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    assert available(alpha.workspace) == to_units(20)
    account = BillingAccount.objects.get(workspace=alpha.workspace)
    assert account.plan is not None
    assert (account.plan.code, account.plan_source, account.plan_expires_at) == ("starter", PlanSource.STRIPE, None)
    assert AuditEvent.objects.get(action="billing.code_redeem").metadata["plan_applied"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"is_active": False}, "no longer active"),
        ({"expires_at": "past"}, "expired"),
        ({"redeemed_count": 1}, "already been used"),
    ],
)
def test_refuses_inactive_expired_and_used_up_codes(alpha, change, message):
    code = one()
    if change.get("expires_at") == "past":
        change["expires_at"] = timezone.now() - timedelta(seconds=1)
    RedemptionCode.objects.filter(pk=code.pk).update(**change)

    with pytest.raises(CodeError, match=message):
        billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    assert available(alpha.workspace) == 0
    assert not Redemption.objects.exists()
    assert not Fulfilment.objects.exists()


def test_refuses_an_unknown_or_empty_code(alpha):
    with pytest.raises(CodeError, match="does not exist"):
        billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code="NOPE-NOPE-NOPE")
    with pytest.raises(CodeError, match="Enter a code"):
        billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code="  ")


def test_refuses_the_same_code_again_in_the_same_workspace(alpha):
    code = one(max_redemptions=5)
    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)

    with pytest.raises(CodeError, match="already been redeemed in this workspace"):
        billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.member, code=code.code)

    assert available(alpha.workspace) == to_units(50)
    code.refresh_from_db()
    assert code.redeemed_count == 1


def test_a_multi_use_code_serves_that_many_workspaces(alpha, beta):
    code = one(max_redemptions=2)
    third = WorkspaceFactory.create()
    third_owner = MembershipFactory.create(workspace=third).user

    billing_code_redeem(workspace=alpha.workspace, acting_user=alpha.owner, code=code.code)
    billing_code_redeem(workspace=beta.workspace, acting_user=beta.owner, code=code.code)
    with pytest.raises(CodeError, match="already been used"):
        billing_code_redeem(workspace=third, acting_user=third_owner, code=code.code)

    assert available(alpha.workspace) == available(beta.workspace) == to_units(50)
    assert available(third) == 0
    code.refresh_from_db()
    assert code.redeemed_count == 2
    assert set(Redemption.objects.values_list("workspace", flat=True)) == {alpha.workspace.pk, beta.workspace.pk}


def test_an_outsider_cannot_redeem_into_a_workspace_or_see_the_codes(alpha, outsider, client):
    code = one()

    with pytest.raises(CodeError, match="not a member"):
        billing_code_redeem(workspace=alpha.workspace, acting_user=outsider, code=code.code)

    assert available(alpha.workspace) == 0
    code.refresh_from_db()
    assert code.redeemed_count == 0
    client.force_login(outsider)
    response = client.get(reverse("admin:billing_redemptioncode_changelist"))
    assert response.status_code == 302
    assert code.code not in response.content.decode()


# ---------------------------------------------------------------------------- at the same moment


def waiting_for_the_writer(call: Callable[[], Any]) -> Callable[[], Any]:
    """On PostgreSQL, `call` as is: the code's row lock decides. SQLite serialises writers (a
    file database waits out the other writer with its busy timeout), but the in-memory test
    database (shared cache) answers "database table is locked" at once instead of waiting; the
    call, rolled back whole, is then retried as the waiting writer would have run it."""

    def run() -> Any:
        deadline = time.monotonic() + 20
        while True:
            try:
                return call()
            except OperationalError as exc:
                if connection.vendor != "sqlite" or "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    return run


@pytest.mark.django_db(transaction=True)
def test_two_workspaces_redeeming_a_single_use_code_at_once_exactly_one_succeeds():
    owners = []
    for _ in range(2):
        workspace = WorkspaceFactory.create()
        owners.append((workspace, MembershipFactory.create(workspace=workspace).user))
    code = one(max_redemptions=1)

    results = run_together(
        *(
            waiting_for_the_writer(partial(billing_code_redeem, workspace=ws, acting_user=user, code=code.code))
            for ws, user in owners
        )
    )

    won = [r for r in results if isinstance(r, Redemption)]
    lost = [r for r in results if isinstance(r, CodeError)]
    assert len(won) == 1, results
    assert len(lost) == 1, results
    assert "already been used" in lost[0].message
    code.refresh_from_db()
    assert code.redeemed_count == 1
    assert Redemption.objects.count() == 1
    assert CreditGrant.objects.count() == 1
    assert Fulfilment.objects.count() == 1
    assert sorted(available(ws) for ws, _ in owners) == [0, to_units(50)]


@pytest.mark.django_db(transaction=True)
def test_one_workspace_redeeming_a_code_twice_at_once_gets_it_once():
    workspace = WorkspaceFactory.create()
    users = [MembershipFactory.create(workspace=workspace).user for _ in range(2)]
    code = one(max_redemptions=5)

    results = run_together(
        *(
            waiting_for_the_writer(partial(billing_code_redeem, workspace=workspace, acting_user=user, code=code.code))
            for user in users
        )
    )

    assert sum(isinstance(r, Redemption) for r in results) == 1, results
    assert sum(isinstance(r, CodeError) for r in results) == 1, results
    code.refresh_from_db()
    assert code.redeemed_count == 1
    assert available(workspace) == to_units(50)

"""Billing pushes what each workspace's plan allows down to the workspaces app, where the lower
layers read it (`apps.workspaces.selectors.workspace_entitlements`) without asking billing:
whenever a plan, trial, expiry or restriction changes, in the same transaction, and in one
statement for every workspace on a plan edited in the admin. What is pushed always agrees with
billing's own computation (`apps.billing.entitlements`)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.billing import entitlements as billing
from apps.billing.models import BillingAccount, Plan
from apps.billing.services import (
    billing_plan_assign,
    billing_plan_expire,
    billing_restrict_overdue,
    billing_trial_extend,
)
from apps.workspaces import selectors as pushed
from apps.workspaces.entitlements import OPEN
from apps.workspaces.models import Workspace, WorkspaceEntitlements
from tests.billing.conftest import event
from tests.billing.test_admin import _plan_form
from tests.billing.test_webhooks import invoice, subscription
from tests.credits.helpers import Clock
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def seen_below(workspace: Workspace | int) -> Any:
    """What the lower layers read now (a fresh instance: nothing remembered)."""
    return pushed.workspace_entitlements(workspace if isinstance(workspace, int) else workspace.pk)


def assert_agrees(*workspaces: Workspace) -> None:
    for workspace in workspaces:
        assert seen_below(workspace) == billing.workspace_entitlements(workspace.pk), workspace


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def test_without_plans_the_lower_layers_see_everything_open(alpha):
    assert seen_below(alpha.workspace) == OPEN
    assert_agrees(alpha.workspace)


def test_seeding_the_catalogue_pushes_the_default_plan(alpha, catalogue):
    assert seen_below(alpha.workspace).plan_code == "free"
    assert seen_below(alpha.workspace).api_access is False
    assert_agrees(alpha.workspace)


def test_a_plan_given_for_some_days_is_pushed_and_ends_without_any_write(alpha, beta, catalogue, monkeypatch):
    clock = Clock(monkeypatch)
    billing_plan_assign(workspace=alpha.workspace, plan=catalogue["plans"]["professional"], acting_user=None, days=7)

    assert seen_below(alpha.workspace).plan_code == "professional"
    assert seen_below(beta.workspace).plan_code == "free"
    assert_agrees(alpha.workspace, beta.workspace)

    clock.advance(days=7, seconds=1)
    assert seen_below(alpha.workspace).plan_code == "free"  # nothing written since
    assert_agrees(alpha.workspace)

    assert billing_plan_expire() == 1
    assert not WorkspaceEntitlements.objects.filter(workspace=alpha.workspace).exists()
    assert_agrees(alpha.workspace)


def test_extending_a_time_limited_plan_pushes_its_new_end(alpha, catalogue, monkeypatch):
    clock = Clock(monkeypatch)
    billing_plan_assign(workspace=alpha.workspace, plan=catalogue["plans"]["starter"], acting_user=None, days=3)

    billing_trial_extend(workspace=alpha.workspace, acting_user=UserFactory.create(is_staff=True), days=4)

    clock.advance(days=5)
    assert seen_below(alpha.workspace).plan_code == "starter"
    assert_agrees(alpha.workspace)


def test_going_back_to_the_default_plan_is_pushed(alpha, catalogue):
    billing_plan_assign(workspace=alpha.workspace, plan=catalogue["plans"]["starter"], acting_user=None)
    billing_plan_assign(workspace=alpha.workspace, plan=None, acting_user=None)

    assert seen_below(alpha.workspace).plan_code == "free"
    assert_agrees(alpha.workspace)


def test_a_subscription_its_restriction_and_its_end_are_pushed(alpha, catalogue, deliver):
    pro = catalogue["plans"]["professional"]
    start = timezone.now().replace(microsecond=0)
    deliver(event("customer.subscription.created", subscription(alpha.workspace, pro, start=start)))
    assert seen_below(alpha.workspace).plan_code == "professional"

    failed = dict(invoice(alpha.workspace, pro, invoice_id="in_f", start=start), attempt_count=1)
    deliver(event("invoice.payment_failed", failed))
    grace_until = BillingAccount.objects.get(workspace=alpha.workspace).grace_until
    assert grace_until is not None
    assert billing_restrict_overdue(now=grace_until + timedelta(seconds=1)) == 1
    assert seen_below(alpha.workspace).plan_code == "free"  # paid features paused
    assert_agrees(alpha.workspace)

    deliver(event("invoice.paid", invoice(alpha.workspace, pro, invoice_id="in_f", start=start)))
    assert seen_below(alpha.workspace).plan_code == "professional"
    assert_agrees(alpha.workspace)

    deliver(event("customer.subscription.deleted", subscription(alpha.workspace, pro, status="canceled")))
    assert seen_below(alpha.workspace).plan_code == "free"
    assert_agrees(alpha.workspace)


def test_a_plan_edited_in_the_admin_reaches_every_workspace_on_it_in_one_statement(staff_client, catalogue):
    starter = catalogue["plans"]["starter"]

    def edit(max_members: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.post(
                reverse("admin:billing_plan_change", args=[starter.pk]),
                _plan_form(staff_client, starter, max_members=str(max_members)),
            )
        assert response.status_code == 302, response.context["adminform"].form.errors
        return sum("workspaces_workspaceentitlements" in q["sql"] for q in queries.captured_queries)

    few = [WorkspaceFactory.create() for _ in range(2)]
    for workspace in few:
        billing_plan_assign(workspace=workspace, plan=starter, acting_user=None)
    with_few = edit(7)
    many = [WorkspaceFactory.create() for _ in range(6)]
    for workspace in many:
        billing_plan_assign(workspace=workspace, plan=starter, acting_user=None)
    with_many = edit(8)

    assert with_few == with_many
    assert {seen_below(workspace).max_members for workspace in few + many} == {8}
    assert_agrees(*few, *many)


def test_making_another_plan_the_default_in_the_admin_is_pushed(staff_client, alpha, catalogue):
    free, starter = catalogue["plans"]["free"], catalogue["plans"]["starter"]
    Plan.objects.filter(pk=free.pk).update(is_default=False)  # one default at a time

    response = staff_client.post(
        reverse("admin:billing_plan_change", args=[starter.pk]), _plan_form(staff_client, starter, is_default="on")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert seen_below(alpha.workspace).plan_code == "starter"
    assert_agrees(alpha.workspace)


def test_the_backfill_pushes_what_exists(alpha, beta, outsider, catalogue, monkeypatch):
    """The data migration that filled the rows for existing workspaces, run on today's data."""
    pro, starter = catalogue["plans"]["professional"], catalogue["plans"]["starter"]
    billing_plan_assign(workspace=alpha.workspace, plan=pro, acting_user=None, days=10)
    billing_plan_assign(workspace=beta.workspace, plan=starter, acting_user=None)
    restricted = WorkspaceFactory.create()
    billing_plan_assign(workspace=restricted, plan=pro, acting_user=None)
    BillingAccount.objects.filter(workspace=restricted).update(restricted=True)
    lapsed = WorkspaceFactory.create()
    billing_plan_assign(workspace=lapsed, plan=pro, acting_user=None, days=1)
    BillingAccount.objects.filter(workspace=lapsed).update(plan_expires_at=timezone.now() - timedelta(hours=1))
    WorkspaceEntitlements.objects.all().delete()

    backfill = importlib.import_module("apps.billing.migrations.0004_push_entitlements")
    backfill.push(global_apps, None)
    # Fields plans gained later are pushed by their own migrations.
    importlib.import_module("apps.billing.migrations.0006_push_max_documents").push(global_apps, None)

    assert set(WorkspaceEntitlements.objects.values_list("workspace_id", flat=True)) == {
        None,
        alpha.workspace.pk,
        beta.workspace.pk,
    }
    clock = Clock(monkeypatch)
    assert_agrees(alpha.workspace, beta.workspace, restricted, lapsed)
    clock.advance(days=11)
    assert_agrees(alpha.workspace, beta.workspace, restricted, lapsed)

"""What a workspace's plan allows, as the lower layers read it (`workspace_entitlements`): the
row billing pushed for the workspace while it is in force, else the default plan's row, else
everything open; one query, remembered on the instance. And the services billing pushes with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.workspaces.entitlements import OPEN, Entitlements
from apps.workspaces.models import Workspace, WorkspaceEntitlements
from apps.workspaces.selectors import (
    workspace_entitlements,
    workspace_member_limit,
    workspace_owned_limit,
    workspace_plan_code,
)
from apps.workspaces.services import (
    workspace_entitlements_clear,
    workspace_entitlements_set,
    workspace_entitlements_set_default,
    workspace_entitlements_update,
)
from tests.credits.helpers import Clock
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

FREE = Entitlements(plan_code="free", plan_name="Free", voice_cloning=False, api_access=False, max_members=3)
PRO = Entitlements(plan_code="pro", plan_name="Pro", max_members=25, max_workspaces=10, rate_limits={"key_rpm": 600})


def fresh(workspace: Workspace) -> Workspace:
    return Workspace.objects.get(pk=workspace.pk)


def test_without_plans_everything_is_open():
    workspace = WorkspaceFactory.create()

    assert workspace_entitlements(workspace) == OPEN
    assert workspace_plan_code(workspace) is None
    assert workspace_member_limit(workspace, 7) == 7


def test_a_workspace_without_a_plan_of_its_own_gets_the_default_plans():
    workspace = WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)

    assert workspace_entitlements(workspace) == FREE
    assert workspace_entitlements(workspace.pk) == FREE
    assert workspace_entitlements(None) == FREE
    assert workspace_member_limit(workspace, 50) == 3


def test_a_plan_of_its_own_wins_over_the_default():
    workspace = WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)
    workspace_entitlements_set(workspace=workspace, entitlements=PRO)

    assert workspace_entitlements(fresh(workspace)) == PRO
    assert workspace_plan_code(workspace.pk) == "pro"
    assert workspace_entitlements(WorkspaceFactory.create()) == FREE


def test_a_time_limited_plan_ends_at_its_expiry_without_any_write(monkeypatch):
    clock = Clock(monkeypatch)
    workspace = WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)
    workspace_entitlements_set(workspace=workspace, entitlements=PRO, expires_at=clock.now + timedelta(days=7))

    clock.advance(days=7, seconds=-1)
    assert workspace_entitlements(fresh(workspace)) == PRO
    clock.advance(seconds=1)
    assert workspace_entitlements(fresh(workspace)) == FREE


def test_an_expired_plan_without_a_default_leaves_everything_open():
    workspace = WorkspaceFactory.create()
    workspace_entitlements_set(workspace=workspace, entitlements=PRO, expires_at=timezone.now() - timedelta(1))

    assert workspace_entitlements(workspace) == OPEN


def test_entitlements_are_read_in_one_query_and_remembered_on_the_instance(django_assert_num_queries):
    workspace = WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)
    workspace = fresh(workspace)

    with django_assert_num_queries(1):
        assert workspace_entitlements(workspace) == FREE
    with django_assert_num_queries(0):
        assert workspace_entitlements(workspace) == FREE
        assert workspace_member_limit(workspace, 50) == 3


def test_entitlements_loaded_with_the_workspace_cost_no_query(django_assert_num_queries):
    own, other = WorkspaceFactory.create(), WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)
    workspace_entitlements_set(workspace=own, entitlements=PRO)
    loaded = {w.pk: w for w in Workspace.objects.select_related("entitlements").filter(pk__in=[own.pk, other.pk])}

    with django_assert_num_queries(0):
        assert workspace_entitlements(loaded[own.pk]) == PRO
    with django_assert_num_queries(1):  # no plan of its own: the default's row
        assert workspace_entitlements(loaded[other.pk]) == FREE


def test_pushing_forgets_what_the_instance_remembered():
    workspace = WorkspaceFactory.create()
    assert workspace_entitlements(workspace) == OPEN

    workspace_entitlements_set(workspace=workspace, entitlements=PRO)
    assert workspace_entitlements(workspace) == PRO

    workspace_entitlements_set(workspace=workspace, entitlements=None)
    assert workspace_entitlements(workspace) == OPEN
    assert not WorkspaceEntitlements.objects.exists()


def test_a_plan_change_rewrites_the_rows_of_its_workspaces_keeping_their_expiry():
    on_pro, also_pro, on_free = WorkspaceFactory.create(), WorkspaceFactory.create(), WorkspaceFactory.create()
    until = timezone.now() + timedelta(days=3)
    workspace_entitlements_set(workspace=on_pro, entitlements=PRO)
    workspace_entitlements_set(workspace=also_pro, entitlements=PRO, expires_at=until)
    workspace_entitlements_set(workspace=on_free, entitlements=FREE)
    bigger = Entitlements(plan_code="pro", plan_name="Pro", max_members=100)

    changed = workspace_entitlements_update(
        workspaces=Workspace.objects.filter(pk__in=[on_pro.pk, also_pro.pk]), entitlements=bigger
    )

    assert changed == 2
    assert workspace_entitlements(fresh(on_pro)) == bigger
    assert workspace_entitlements(fresh(also_pro)) == bigger
    assert WorkspaceEntitlements.objects.get(workspace=also_pro).expires_at == until
    assert workspace_entitlements(fresh(on_free)) == FREE


def test_clearing_puts_workspaces_back_on_the_default():
    first, second = WorkspaceFactory.create(), WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=FREE)
    workspace_entitlements_set(workspace=first, entitlements=PRO)
    workspace_entitlements_set(workspace=second, entitlements=PRO)

    assert workspace_entitlements_clear(workspaces=Workspace.objects.filter(pk=first.pk)) == 1

    assert workspace_entitlements(fresh(first)) == FREE
    assert workspace_entitlements(fresh(second)) == PRO


def test_there_is_one_default_row_and_no_default_plan_removes_it():
    workspace_entitlements_set_default(entitlements=FREE)
    workspace_entitlements_set_default(entitlements=PRO)
    assert WorkspaceEntitlements.objects.filter(workspace__isnull=True).count() == 1
    assert workspace_entitlements(None) == PRO

    workspace_entitlements_set_default(entitlements=None)
    assert workspace_entitlements(None) == OPEN


def test_the_workspace_limit_is_the_best_plan_among_those_owned():
    free, pro = WorkspaceFactory.create(), WorkspaceFactory.create()
    workspace_entitlements_set_default(entitlements=Entitlements(plan_code="free", plan_name="Free", max_workspaces=2))
    workspace_entitlements_set(workspace=pro, entitlements=PRO)

    assert workspace_owned_limit([free.pk], 50) == 2
    assert workspace_owned_limit([free.pk, pro.pk], 50) == 10
    assert workspace_owned_limit([], 5) == 5

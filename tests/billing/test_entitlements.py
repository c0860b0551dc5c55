"""Limits that come from the plan: members per workspace, workspaces per person; without plans
the site defaults apply."""

from __future__ import annotations

import pytest
from constance.test.pytest import override_config

from apps.billing.entitlements import workspace_entitlements
from apps.billing.models import Plan
from apps.billing.services import billing_plan_assign
from apps.workspaces.exceptions import WorkspaceLimitReached
from apps.workspaces.services import workspace_create, workspace_member_invite

pytestmark = pytest.mark.django_db


def test_without_plans_everything_is_open(alpha):
    entitlements = workspace_entitlements(alpha.workspace)
    assert entitlements.plan_code is None
    assert entitlements.voice_cloning
    assert entitlements.api_access
    assert entitlements.max_members is None


@override_config(MAX_MEMBERS_PER_WORKSPACE=50)
def test_the_plan_limits_members_and_invitations(alpha, catalogue):
    # Alpha has 3 members; Free allows 3 (members and pending invitations together).
    with pytest.raises(WorkspaceLimitReached):
        workspace_member_invite(
            workspace=alpha.workspace, email="new@example.com", role="member", acting_user=alpha.owner
        )
    billing_plan_assign(workspace=alpha.workspace, plan=Plan.objects.get(code="starter"), acting_user=None)
    workspace_member_invite(workspace=alpha.workspace, email="new@example.com", role="member", acting_user=alpha.owner)


@override_config(MAX_WORKSPACES_PER_USER=50)
def test_the_best_plan_among_owned_workspaces_sets_the_workspace_limit(alpha, catalogue):
    # Free allows 2 workspaces: alpha's owner owns one, may create one more.
    workspace_create(acting_user=alpha.owner, name="Second")
    with pytest.raises(WorkspaceLimitReached):
        workspace_create(acting_user=alpha.owner, name="Third")
    billing_plan_assign(workspace=alpha.workspace, plan=Plan.objects.get(code="professional"), acting_user=None)
    workspace_create(acting_user=alpha.owner, name="Third")

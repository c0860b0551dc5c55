"""Races that the workspace row lock must serialise, run for real: two threads, two database
connections, released together by a barrier. PostgreSQL only."""

from __future__ import annotations

from typing import Any

import pytest
from constance.test.pytest import override_config
from django.db import connection

from apps.workspaces import services
from apps.workspaces.exceptions import WorkspaceError, WorkspaceLimitReached
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests.concurrency import run_together
from tests.factories import MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite ignores select_for_update and serialises all writers, so no race can occur",
    ),
    pytest.mark.django_db(transaction=True),
]

ROUNDS = 5


def _failures(results: list[Any]) -> list[Exception]:
    return [r for r in results if isinstance(r, Exception)]


def test_two_owners_demoting_each_other_at_once_leave_an_owner(alpha):
    second = MembershipFactory.create(workspace=alpha.workspace, user=UserFactory.create(), role=Role.OWNER)
    first = alpha.owner_membership

    for _ in range(ROUNDS):
        Membership.objects.filter(pk__in=[first.pk, second.pk]).update(role=Role.OWNER)

        results = run_together(
            lambda: services.workspace_member_role_change(membership=second, role=Role.MEMBER, acting_user=first.user),
            lambda: services.workspace_member_role_change(membership=first, role=Role.MEMBER, acting_user=second.user),
        )

        assert Membership.objects.filter(workspace=alpha.workspace, role=Role.OWNER).count() == 1
        failures = _failures(results)
        assert len(failures) == 1
        assert isinstance(failures[0], WorkspaceError), failures[0]


def test_two_owners_removing_each_other_at_once_leave_an_owner(alpha):
    second = MembershipFactory.create(workspace=alpha.workspace, user=UserFactory.create(), role=Role.OWNER)
    first = alpha.owner_membership

    results = run_together(
        lambda: services.workspace_member_remove(membership=second, acting_user=first.user),
        lambda: services.workspace_member_remove(membership=first, acting_user=second.user),
    )

    assert Membership.objects.filter(workspace=alpha.workspace, role=Role.OWNER).count() == 1
    failures = _failures(results)
    assert len(failures) == 1
    assert isinstance(failures[0], WorkspaceError), failures[0]


def test_two_accepts_racing_for_the_last_seat_do_not_exceed_the_limit(alpha):
    for _ in range(ROUNDS):
        Membership.objects.filter(workspace=alpha.workspace).exclude(
            pk__in=[alpha.owner_membership.pk, alpha.admin_membership.pk, alpha.member_membership.pk]
        ).delete()
        Invitation.objects.filter(workspace=alpha.workspace).delete()
        first, second = UserFactory.create(), UserFactory.create()
        with override_config(MAX_MEMBERS_PER_WORKSPACE=5):
            _, first_token = services.workspace_member_invite(
                workspace=alpha.workspace, email=first.email, role=Role.MEMBER, acting_user=alpha.owner
            )
            _, second_token = services.workspace_member_invite(
                workspace=alpha.workspace, email=second.email, role=Role.MEMBER, acting_user=alpha.owner
            )

        # Staff lowered the limit: one seat is left for the two invitees.
        with override_config(MAX_MEMBERS_PER_WORKSPACE=4):
            results = run_together(
                lambda: services.workspace_invitation_accept(token=first_token, acting_user=first),  # noqa: B023
                lambda: services.workspace_invitation_accept(token=second_token, acting_user=second),  # noqa: B023
            )

        assert Membership.objects.filter(workspace=alpha.workspace).count() == 4
        failures = _failures(results)
        assert len(failures) == 1
        assert isinstance(failures[0], WorkspaceLimitReached), failures[0]


def test_two_workspace_creations_at_the_limit_create_one(outsider):
    for round_ in range(ROUNDS):
        Workspace.objects.filter(created_by=outsider).delete()
        with override_config(MAX_WORKSPACES_PER_USER=1):
            results = run_together(
                lambda: services.workspace_create(acting_user=outsider, name=f"A{round_}"),  # noqa: B023
                lambda: services.workspace_create(acting_user=outsider, name=f"B{round_}"),  # noqa: B023
            )

        assert Membership.objects.filter(user=outsider, role=Role.OWNER).count() == 1
        failures = _failures(results)
        assert len(failures) == 1
        assert isinstance(failures[0], WorkspaceLimitReached), failures[0]


def test_accept_racing_a_workspace_deletion_neither_deadlocks_nor_leaves_a_member(alpha):
    for round_ in range(ROUNDS):
        workspace = Workspace.objects.create(name=f"Doomed {round_}", slug=f"doomed-{round_}")
        owner = MembershipFactory.create(workspace=workspace, role=Role.OWNER).user
        invitee = UserFactory.create()
        _, token = services.workspace_member_invite(
            workspace=workspace, email=invitee.email, role=Role.MEMBER, acting_user=owner
        )

        results = run_together(
            lambda: services.workspace_invitation_accept(token=token, acting_user=invitee),  # noqa: B023
            lambda: services.workspace_delete(
                workspace=workspace,  # noqa: B023
                acting_user=owner,  # noqa: B023
                confirm_name=workspace.name,  # noqa: B023
            ),
        )

        failures = _failures(results)
        assert all(isinstance(f, WorkspaceError) for f in failures), failures
        assert Workspace.objects.get(pk=workspace.pk).is_deleted
        assert not Membership.objects.filter(workspace=workspace).exists()

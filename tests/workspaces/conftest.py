"""Helpers for the workspaces tests: a snapshot of every workspace row (to prove a refused
action changed nothing), invitations created through the service, and a way to run the
`transaction.on_commit` callbacks (the invitation email) inside a test transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from apps.accounts.models import User
from apps.workspaces import services
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests.conftest import Team


def workspace_state() -> dict[str, Any]:
    """Everything a workspace action could change, in a comparable form."""
    return {
        "workspaces": sorted(Workspace.objects.values_list("pk", "name", "deleted_at")),
        "memberships": sorted(Membership.objects.values_list("pk", "workspace_id", "user_id", "role")),
        "invitations": sorted(
            Invitation.objects.values_list(
                "pk", "workspace_id", "email", "role", "token_hash", "expires_at", "accepted_at", "revoked_at"
            )
        ),
    }


@contextmanager
def unchanged() -> Iterator[None]:
    """Asserts the block left every workspace, membership and invitation row as it was."""
    before = workspace_state()
    yield
    assert workspace_state() == before


@pytest.fixture
def invite(django_capture_on_commit_callbacks: Any) -> Callable[..., tuple[Invitation, str]]:
    """`invite(team, email, role=..., by=...)` creates an invitation through the service and
    runs its on-commit email task, as a committed request would."""

    def make(team: Team, email: str, *, role: str = Role.MEMBER, by: User | None = None) -> tuple[Invitation, str]:
        with django_capture_on_commit_callbacks(execute=True):
            return services.workspace_member_invite(
                workspace=team.workspace, email=email, role=role, acting_user=by or team.owner
            )

    return make

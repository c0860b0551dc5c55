"""Each workspace change made through the web leaves one audit row naming who, where and from
which address; a refused change leaves none."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.workspaces.models import Invitation, Workspace
from tests.conftest import Team
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"


def _create(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    client = client_for(team.member, team.workspace)
    client.post(reverse("workspaces:create"), {"name": "Fresh"}, REMOTE_ADDR=IP)
    workspace = Workspace.objects.get(name="Fresh")
    return team.member, workspace, {"target_id": str(workspace.pk), "metadata": {"personal": False}}


def _delete(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    client_for(team.owner, team.workspace).post(
        reverse("workspaces:delete"), {"confirm_name": team.workspace.name}, REMOTE_ADDR=IP
    )
    return team.owner, team.workspace, {"target_id": str(team.workspace.pk)}


def _invite(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    client_for(team.admin, team.workspace).post(
        reverse("workspaces:invite"), {"email": "new@example.com", "role": "admin"}, REMOTE_ADDR=IP
    )
    invitation = Invitation.objects.get(email="new@example.com")
    return (
        team.admin,
        team.workspace,
        {"target_id": str(invitation.pk), "metadata": {"email": "new@example.com", "role": "admin"}},
    )


def _role_change(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    client_for(team.admin, team.workspace).post(
        reverse("workspaces:member_role", args=[team.member_membership.pk]), {"role": "admin"}, REMOTE_ADDR=IP
    )
    return (
        team.admin,
        team.workspace,
        {"target_id": str(team.member.pk), "metadata": {"from": "member", "to": "admin"}},
    )


def _remove(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    client_for(team.owner, team.workspace).post(
        reverse("workspaces:member_remove", args=[team.admin_membership.pk]), REMOTE_ADDR=IP
    )
    return team.owner, team.workspace, {"target_id": str(team.admin.pk), "metadata": {"role": "admin"}}


def _accept(team: Team, client_for, invite) -> tuple[object, Workspace, dict]:
    invitation, token = invite(team, "joiner@example.com")
    joiner = UserFactory.create(email="joiner@example.com")
    client_for(joiner).post(reverse("workspaces:invitation_accept", args=[token]), REMOTE_ADDR=IP)
    return joiner, team.workspace, {"target_id": str(invitation.pk), "metadata": {"role": "member"}}


ACTIONS: dict[str, Callable] = {
    "workspace.create": _create,
    "workspace.delete": _delete,
    "workspace.member_invite": _invite,
    "workspace.member_role_change": _role_change,
    "workspace.member_remove": _remove,
    "workspace.invitation_accept": _accept,
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_web_action_writes_audit_row_with_actor_workspace_and_ip(alpha, client_for, invite, action):
    actor, workspace, expected = ACTIONS[action](alpha, client_for, invite)

    event = AuditEvent.objects.get(action=action)
    assert event.actor == actor
    assert event.actor_label == actor.email
    assert event.workspace_id == workspace.pk
    assert event.ip == IP
    assert event.request_id
    assert event.target_id == expected["target_id"]
    if "metadata" in expected:
        assert event.metadata == expected["metadata"]


@pytest.mark.parametrize(
    ("who", "url_name", "args", "data"),
    [
        ("member", "workspaces:invite", [], {"email": "x@example.com", "role": "member"}),
        ("admin", "workspaces:invite", [], {"email": "x@example.com", "role": "owner"}),
        ("admin", "workspaces:member_role", ["owner_membership"], {"role": "member"}),
        ("owner", "workspaces:member_role", ["owner_membership"], {"role": "member"}),
        ("owner", "workspaces:member_remove", ["owner_membership"], {}),
        ("owner", "workspaces:delete", [], {"confirm_name": "wrong"}),
        ("admin", "workspaces:delete", [], {"confirm_name": "Alpha"}),
    ],
)
def test_refused_action_writes_no_audit_row(alpha, client_for, who, url_name, args, data):
    url = reverse(url_name, args=[getattr(alpha, a).pk for a in args])
    before = AuditEvent.objects.filter(action__startswith="workspace.").count()

    response = client_for(getattr(alpha, who), alpha.workspace).post(url, data)

    assert response.status_code in (400, 403)
    assert AuditEvent.objects.filter(action__startswith="workspace.").count() == before

"""Roles and removal on the members page. Every refused change leaves the rows as they were."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces import services
from apps.workspaces.exceptions import WorkspaceError, WorkspacePermissionDenied
from apps.workspaces.models import Membership
from apps.workspaces.roles import ROLE_PERMISSIONS, Perm, Role, role_has_perm
from tests.factories import MembershipFactory, UserFactory
from tests.workspaces.conftest import unchanged

pytestmark = pytest.mark.django_db

MEMBERS = reverse("workspaces:members")


@pytest.fixture
def second_admin(alpha) -> Membership:
    return MembershipFactory.create(
        workspace=alpha.workspace, user=UserFactory.create(email="alpha-admin2@example.com"), role="admin"
    )


@pytest.fixture
def second_owner(alpha) -> Membership:
    return MembershipFactory.create(
        workspace=alpha.workspace, user=UserFactory.create(email="alpha-owner2@example.com"), role="owner"
    )


def _membership(alpha, who: str, request) -> Membership:
    if who in ("owner", "admin", "member"):
        return getattr(alpha, f"{who}_membership")
    return request.getfixturevalue(who)


def _role_url(membership: Membership) -> str:
    return reverse("workspaces:member_role", args=[membership.pk])


def _remove_url(membership: Membership) -> str:
    return reverse("workspaces:member_remove", args=[membership.pk])


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ---------------------------------------------------------------------------- roles


def test_role_permissions():
    assert ROLE_PERMISSIONS[Role.OWNER] == frozenset(Perm.values)
    assert role_has_perm(Role.ADMIN, Perm.MANAGE_MEMBERS)
    assert role_has_perm(Role.ADMIN, Perm.MANAGE_SETTINGS)
    assert not role_has_perm(Role.ADMIN, Perm.DELETE)
    assert not role_has_perm(Role.ADMIN, Perm.MANAGE_BILLING)
    assert not role_has_perm(Role.MEMBER, Perm.MANAGE_MEMBERS)
    assert role_has_perm(Role.ADMIN, Perm.MANAGE_CONTENT)
    assert not role_has_perm(Role.MEMBER, Perm.MANAGE_CONTENT)
    assert role_has_perm(Role.MEMBER, Perm.USE)
    assert not role_has_perm("nobody", Perm.USE)


@pytest.mark.parametrize(
    ("actor", "target", "new_role"),
    [
        ("owner", "member", "admin"),
        ("owner", "member", "owner"),
        ("owner", "admin", "owner"),
        ("owner", "admin", "member"),
        ("owner", "second_owner", "member"),
        ("admin", "member", "admin"),
        ("admin", "second_admin", "member"),
    ],
)
def test_allowed_role_change(client_for, alpha, request, actor, target, new_role):
    membership = _membership(alpha, target, request)

    response = client_for(getattr(alpha, actor), alpha.workspace).post(_role_url(membership), {"role": new_role})

    assert response.status_code == 302
    assert response["Location"] == MEMBERS
    membership.refresh_from_db()
    assert membership.role == new_role


@pytest.mark.parametrize(
    ("actor", "target", "new_role", "status", "message"),
    [
        ("admin", "member", "owner", 403, "You cannot give a role higher than your own."),
        ("admin", "owner", "admin", 403, "Only an owner can change or remove an owner."),
        ("admin", "owner", "member", 403, "Only an owner can change or remove an owner."),
        ("admin", "second_owner", "member", 403, "Only an owner can change or remove an owner."),
        (
            "owner",
            "owner",
            "admin",
            400,
            "A workspace needs at least one owner. Make someone else owner first.",
        ),
    ],
)
def test_refused_role_change_changes_nothing(client_for, alpha, request, actor, target, new_role, status, message):
    membership = _membership(alpha, target, request)

    with unchanged():
        response = client_for(getattr(alpha, actor), alpha.workspace).post(_role_url(membership), {"role": new_role})

    assert response.status_code == status
    assert _messages(response) == [message]


@pytest.mark.parametrize("target", ["owner", "admin", "member"])
def test_member_cannot_change_roles(client_for, alpha, target):
    with unchanged():
        response = client_for(alpha.member, alpha.workspace).post(
            _role_url(getattr(alpha, f"{target}_membership")), {"role": "owner"}
        )

    assert response.status_code == 403


def test_invalid_role_gives_400(client_for, alpha):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(_role_url(alpha.member_membership), {"role": "god"})

    assert response.status_code == 400
    assert _messages(response) == ["Choose a valid role."]


def test_owner_can_step_down_while_another_owner_remains(alpha, second_owner):
    services.workspace_member_role_change(membership=alpha.owner_membership, role=Role.ADMIN, acting_user=alpha.owner)

    alpha.owner_membership.refresh_from_db()
    assert alpha.owner_membership.role == Role.ADMIN


def test_the_last_of_two_owners_cannot_be_demoted(alpha, second_owner):
    services.workspace_member_role_change(membership=second_owner, role=Role.MEMBER, acting_user=alpha.owner)

    with unchanged(), pytest.raises(WorkspaceError, match="at least one owner"):
        services.workspace_member_role_change(
            membership=alpha.owner_membership, role=Role.ADMIN, acting_user=alpha.owner
        )


def test_setting_the_same_role_changes_nothing(alpha):
    with unchanged():
        services.workspace_member_role_change(
            membership=alpha.member_membership, role=Role.MEMBER, acting_user=alpha.admin
        )


def test_role_change_service_refuses_someone_from_another_workspace(alpha, beta):
    with unchanged(), pytest.raises(WorkspacePermissionDenied):
        services.workspace_member_role_change(
            membership=alpha.member_membership, role=Role.ADMIN, acting_user=beta.owner
        )


# ---------------------------------------------------------------------------- remove


@pytest.mark.parametrize(
    ("actor", "target"),
    [
        ("owner", "member"),
        ("owner", "admin"),
        ("owner", "second_owner"),
        ("admin", "member"),
        ("admin", "second_admin"),
    ],
)
def test_allowed_removal(client_for, alpha, request, actor, target):
    membership = _membership(alpha, target, request)

    response = client_for(getattr(alpha, actor), alpha.workspace).post(_remove_url(membership))

    assert response.status_code == 302
    assert response["Location"] == MEMBERS
    assert not Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.parametrize(
    ("actor", "target", "status", "message"),
    [
        ("admin", "owner", 403, "Only an owner can change or remove an owner."),
        ("admin", "second_owner", 403, "Only an owner can change or remove an owner."),
        ("owner", "owner", 400, "You cannot remove the last owner of a workspace."),
    ],
)
def test_refused_removal_changes_nothing(client_for, alpha, request, actor, target, status, message):
    membership = _membership(alpha, target, request)

    with unchanged():
        response = client_for(getattr(alpha, actor), alpha.workspace).post(_remove_url(membership))

    assert response.status_code == status
    assert _messages(response) == [message]


@pytest.mark.parametrize("target", ["owner", "admin", "member"])
def test_member_cannot_remove_anyone(client_for, alpha, target):
    with unchanged():
        response = client_for(alpha.member, alpha.workspace).post(_remove_url(getattr(alpha, f"{target}_membership")))

    assert response.status_code == 403


def test_removed_member_loses_access(client_for, alpha):
    member_client = client_for(alpha.member, alpha.workspace)
    services.workspace_member_remove(membership=alpha.member_membership, acting_user=alpha.admin)

    response = member_client.get(MEMBERS)

    assert response.status_code == 302
    assert response["Location"] == reverse("workspaces:create")


@pytest.mark.parametrize("url", [_role_url, _remove_url])
def test_member_role_and_remove_need_post(client_for, alpha, url):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).get(url(alpha.member_membership), {"role": "admin"})

    assert response.status_code == 405


# ---------------------------------------------------------------------------- members page


def test_members_page_lists_members_and_managers_see_invitations(client_for, alpha, invite):
    invite(alpha, "pending@example.com")

    for_admin = client_for(alpha.admin, alpha.workspace).get(MEMBERS)
    for_member = client_for(alpha.member, alpha.workspace).get(MEMBERS)

    assert for_admin.status_code == for_member.status_code == 200
    for page in (for_admin, for_member):
        html = page.content.decode()
        for user in (alpha.owner, alpha.admin, alpha.member):
            assert user.email in html
    assert "pending@example.com" in for_admin.content.decode()
    assert "pending@example.com" not in for_member.content.decode()
    assert f'action="{reverse("workspaces:invite")}"' in for_admin.content.decode()
    assert f'action="{reverse("workspaces:invite")}"' not in for_member.content.decode()
    assert f'action="{_remove_url(alpha.admin_membership)}"' not in for_member.content.decode()


def test_members_page_offers_admins_no_owner_controls(client_for, alpha):
    html = client_for(alpha.admin, alpha.workspace).get(MEMBERS).content.decode()

    assert f'action="{_role_url(alpha.member_membership)}"' in html
    assert f'action="{_remove_url(alpha.member_membership)}"' in html
    assert f'action="{_role_url(alpha.owner_membership)}"' not in html
    assert f'action="{_remove_url(alpha.owner_membership)}"' not in html
    assert '<option value="owner"' not in html


def test_members_page_offers_owners_every_control_but_on_themselves(client_for, alpha):
    html = client_for(alpha.owner, alpha.workspace).get(MEMBERS).content.decode()

    assert f'action="{_role_url(alpha.admin_membership)}"' in html
    assert f'action="{_remove_url(alpha.admin_membership)}"' in html
    assert '<option value="owner"' in html
    assert f'action="{_role_url(alpha.owner_membership)}"' not in html
    assert f'action="{_remove_url(alpha.owner_membership)}"' not in html

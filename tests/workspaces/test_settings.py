"""Rename, delete and leave: the workspace settings page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces import services
from apps.workspaces.exceptions import WorkspaceError, WorkspacePermissionDenied
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests.factories import MembershipFactory, UserFactory
from tests.workspaces.conftest import unchanged

pytestmark = pytest.mark.django_db

SETTINGS = reverse("workspaces:settings")
DELETE = reverse("workspaces:delete")
LEAVE = reverse("workspaces:leave")


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ---------------------------------------------------------------------------- rename


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_can_rename(client_for, alpha, role):
    user = getattr(alpha, role)

    response = client_for(user, alpha.workspace).post(SETTINGS, {"name": "Alpha Labs"})

    assert response.status_code == 302
    assert response["Location"] == SETTINGS
    alpha.workspace.refresh_from_db()
    assert alpha.workspace.name == "Alpha Labs"


def test_member_cannot_rename(client_for, alpha):
    with unchanged():
        response = client_for(alpha.member, alpha.workspace).post(SETTINGS, {"name": "Hijacked"})

    assert response.status_code == 403
    assert _messages(response) == ["Your role in this workspace does not allow this."]


def test_rename_with_blank_name_gives_400_with_field_error(client_for, alpha):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(SETTINGS, {"name": "   "})

    assert response.status_code == 400
    assert response.context["rename_form"].errors["name"] == ["This field is required."]


def test_settings_page_shows_rename_only_to_managers_and_delete_only_to_owner(client_for, alpha):
    pages = {role: client_for(getattr(alpha, role), alpha.workspace).get(SETTINGS) for role in Role.values}

    assert all(page.status_code == 200 for page in pages.values())
    assert f'action="{SETTINGS}"' in pages["owner"].content.decode()
    assert f'action="{SETTINGS}"' in pages["admin"].content.decode()
    assert f'action="{SETTINGS}"' not in pages["member"].content.decode()
    assert f'action="{DELETE}"' in pages["owner"].content.decode()
    assert f'action="{DELETE}"' not in pages["admin"].content.decode()
    assert f'action="{DELETE}"' not in pages["member"].content.decode()


def test_rename_service_refuses_a_non_member(alpha, outsider):
    with unchanged(), pytest.raises(WorkspacePermissionDenied):
        services.workspace_rename(workspace=alpha.workspace, name="Mine now", acting_user=outsider)


# ---------------------------------------------------------------------------- delete


def test_owner_deletes_workspace_softly(client_for, alpha, invite):
    pending, _ = invite(alpha, "pending@example.com")
    accepted, token = invite(alpha, "joined@example.com")
    joiner = UserFactory.create(email="joined@example.com")
    services.workspace_invitation_accept(token=token, acting_user=joiner)
    client = client_for(alpha.owner, alpha.workspace)

    response = client.post(DELETE, {"confirm_name": "Alpha"})

    assert response.status_code == 302
    assert response["Location"] == reverse("workspaces:list")
    workspace = Workspace.objects.get(pk=alpha.workspace.pk)
    assert workspace.deleted_at is not None
    assert workspace.is_deleted
    assert not Membership.objects.filter(workspace=workspace).exists()
    pending.refresh_from_db()
    accepted.refresh_from_db()
    assert pending.revoked_at is not None
    assert accepted.revoked_at is None  # history of a used invitation stays as it was
    assert SESSION_KEY not in client.session


def test_deleted_workspace_disappears_from_lists_and_cannot_be_switched_to(client_for, alpha, beta):
    MembershipFactory.create(workspace=beta.workspace, user=alpha.owner, role=Role.MEMBER)
    client = client_for(alpha.owner, alpha.workspace)
    client.post(DELETE, {"confirm_name": "Alpha"})

    listing = client.get(reverse("workspaces:list"))
    switch = client.post(reverse("workspaces:switch"), {"workspace": alpha.workspace.pk})

    assert [m.workspace for m in listing.context["memberships"]] == [beta.workspace]
    html = listing.content.decode()
    assert f'<option value="{alpha.workspace.pk}"' not in html
    assert f'name="workspace" value="{alpha.workspace.pk}"' not in html
    assert switch.status_code == 404
    assert not Workspace.objects.for_user(alpha.owner).filter(pk=alpha.workspace.pk).exists()


def test_other_members_of_a_deleted_workspace_lose_it(client_for, alpha):
    member_client = client_for(alpha.member, alpha.workspace)
    services.workspace_delete(workspace=alpha.workspace, acting_user=alpha.owner, confirm_name="Alpha")

    response = member_client.get(reverse("workspaces:members"))

    assert response.status_code == 302
    assert response["Location"] == reverse("workspaces:create")


def test_invitation_link_of_a_deleted_workspace_says_so(client_for, alpha, invite):
    _, token = invite(alpha, "late@example.com")
    late = UserFactory.create(email="late@example.com")
    services.workspace_delete(workspace=alpha.workspace, acting_user=alpha.owner, confirm_name="Alpha")

    response = client_for(late).post(reverse("workspaces:invitation_accept", args=[token]))

    assert response.status_code == 410
    assert response.context["error"] == "This workspace no longer exists."
    assert not Membership.objects.filter(user=late).exists()


@pytest.mark.parametrize("confirm", ["alpha", "Alpha!", "Beta", "Alph"])
def test_delete_with_wrong_confirmation_refuses_and_keeps_workspace(client_for, alpha, confirm):
    client = client_for(alpha.owner, alpha.workspace)

    with unchanged():
        response = client.post(DELETE, {"confirm_name": confirm})

    assert response.status_code == 400
    assert _messages(response) == ["Type the workspace name exactly to confirm deletion."]
    assert client.session[SESSION_KEY] == alpha.workspace.pk


def test_delete_without_confirmation_gives_400_with_field_error(client_for, alpha):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(DELETE, {})

    assert response.status_code == 400
    assert response.context["delete_form"].errors["confirm_name"] == ["This field is required."]


@pytest.mark.parametrize("role", ["admin", "member"])
def test_only_the_owner_can_delete(client_for, alpha, role):
    with unchanged():
        response = client_for(getattr(alpha, role), alpha.workspace).post(DELETE, {"confirm_name": "Alpha"})

    assert response.status_code == 403


def test_delete_needs_post(client_for, alpha):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).get(DELETE, {"confirm_name": "Alpha"})

    assert response.status_code == 405


def test_delete_service_refuses_an_admin(alpha):
    with unchanged(), pytest.raises(WorkspacePermissionDenied):
        services.workspace_delete(workspace=alpha.workspace, acting_user=alpha.admin, confirm_name="Alpha")


def test_delete_by_system_needs_no_role_and_revokes_invitations(alpha, invite):
    invitation, _ = invite(alpha, "pending@example.com")

    services.workspace_delete_by_system(workspace=alpha.workspace, acting_user=None, reason="account deleted")

    alpha.workspace.refresh_from_db()
    invitation.refresh_from_db()
    assert alpha.workspace.is_deleted
    assert invitation.status == Invitation.Status.REVOKED
    assert not Membership.objects.filter(workspace=alpha.workspace).exists()


# ---------------------------------------------------------------------------- leave


@pytest.mark.parametrize("role", ["admin", "member"])
def test_member_can_leave(client_for, alpha, role):
    user = getattr(alpha, role)
    client = client_for(user, alpha.workspace)

    response = client.post(LEAVE)

    assert response.status_code == 302
    assert response["Location"] == reverse("workspaces:list")
    assert not Membership.objects.filter(workspace=alpha.workspace, user=user).exists()
    assert SESSION_KEY not in client.session


def test_last_owner_cannot_leave(client_for, alpha):
    client = client_for(alpha.owner, alpha.workspace)

    with unchanged():
        response = client.post(LEAVE, follow=True)

    assert response.redirect_chain == [(SETTINGS, 302)]
    assert _messages(response) == ["You are the last owner. Make someone else owner, or delete the workspace."]


def test_owner_can_leave_when_another_owner_remains(client_for, alpha):
    alpha.admin_membership.role = Role.OWNER
    alpha.admin_membership.save()

    client_for(alpha.owner, alpha.workspace).post(LEAVE)

    owners = Membership.objects.filter(workspace=alpha.workspace, role=Role.OWNER).values_list("user", flat=True)
    assert list(owners) == [alpha.admin.pk]
    assert not Membership.objects.filter(workspace=alpha.workspace, user=alpha.owner).exists()


def test_leave_service_refuses_a_non_member(alpha, outsider):
    with unchanged(), pytest.raises(WorkspacePermissionDenied):
        services.workspace_member_leave(workspace=alpha.workspace, acting_user=outsider)


def test_leave_service_refuses_the_last_owner(alpha):
    with unchanged(), pytest.raises(WorkspaceError, match="last owner"):
        services.workspace_member_leave(workspace=alpha.workspace, acting_user=alpha.owner)


# ---------------------------------------------------------------------------- response cache

CACHE = reverse("workspaces:response_cache")


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_turn_the_response_cache_on_and_off_audited(client_for, alpha, role):
    from apps.audit.models import AuditEvent

    client = client_for(getattr(alpha, role), alpha.workspace)
    assert client.post(CACHE, {"response_cache": "on"}).status_code == 302
    alpha.workspace.refresh_from_db()
    assert alpha.workspace.response_cache
    assert client.post(CACHE, {}).status_code == 302  # an unchecked box is absent
    alpha.workspace.refresh_from_db()
    assert not alpha.workspace.response_cache
    events = AuditEvent.objects.filter(action="workspace.response_cache", workspace=alpha.workspace)
    assert [e.metadata["enabled"] for e in events.order_by("id")] == [True, False]
    page = client.get(SETTINGS)
    assert b"Response cache" in page.content


def test_members_cannot_change_the_response_cache(client_for, alpha):
    response = client_for(alpha.member, alpha.workspace).post(CACHE, {"response_cache": "on"})
    assert response.status_code == 403
    alpha.workspace.refresh_from_db()
    assert not alpha.workspace.response_cache
    assert b"Response cache" not in client_for(alpha.member, alpha.workspace).get(SETTINGS).content


def test_response_cache_change_applies_to_the_current_workspace_only(client_for, alpha, beta):
    client_for(alpha.owner, alpha.workspace).post(CACHE, {"response_cache": "on"})
    beta.workspace.refresh_from_db()
    assert not beta.workspace.response_cache


def test_the_response_cache_help_text_sits_under_its_checkbox_not_over_it(client_for, alpha):
    alpha.workspace.response_cache = True
    alpha.workspace.save(update_fields=["response_cache"])

    html = client_for(alpha.owner, alpha.workspace).get(SETTINGS).content.decode()

    field = html.split('data-testid="response-cache-field"')[1].split("</fieldset>")[0]
    label = field.split("<label")[1].split("</label>")[0]
    after_label = field.split("</label>")[1]
    # Inside the label, Pico lays a <small> that follows the checkbox over it; it comes after.
    assert 'type="checkbox" name="response_cache"' in label
    assert "checked" in label
    assert "Serve repeated requests from the response cache" in label
    assert "<small" not in label
    assert '<small id="id_response_cache_helptext">Identical chat requests' in after_label
    assert 'aria-describedby="id_response_cache_helptext"' in label

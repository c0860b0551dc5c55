"""Deleting one's own account: confirmation, what is deleted, what is kept, and the audit trail
that stays readable without naming the person."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoCaptureOnCommitCallbacks

from apps.accounts.models import User
from apps.accounts.services import user_delete
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from apps.workspaces.services import workspace_create
from tests.accounts.helpers import audit_rows, login_post, png_bytes
from tests.conftest import ClientFor, Team
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

DELETE = "/account/privacy/delete/"


def confirm(password: str = PASSWORD, word: str = "DELETE") -> dict[str, str]:
    return {"password": password, "confirm": word}


def test_wrong_password_is_refused_with_400_and_nothing_deleted(client_for: ClientFor, alpha: Team) -> None:
    client = client_for(alpha.owner, alpha.workspace)

    response = client.post(DELETE, confirm(password="wrong-password"))

    assert response.status_code == 400
    assert response.context["delete_form"].errors["password"]
    assert "The password is not correct." in response.content.decode()
    assert User.objects.filter(pk=alpha.owner.pk).exists()
    assert Workspace.objects.get(pk=alpha.workspace.pk).deleted_at is None
    assert not audit_rows("user.delete")
    assert client.get(reverse("accounts:profile")).status_code == 200


@pytest.mark.parametrize("word", ["", "delete", "DELETE ME", "yes"])
def test_missing_delete_confirmation_is_refused_with_400(client_for: ClientFor, alpha: Team, word: str) -> None:
    client = client_for(alpha.owner, alpha.workspace)

    response = client.post(DELETE, confirm(word=word))

    assert response.status_code == 400
    assert response.context["delete_form"].errors["confirm"]
    assert User.objects.filter(pk=alpha.owner.pk).exists()
    assert EmailAddress.objects.filter(user=alpha.owner).exists()


def test_delete_page_get_shows_the_form(client_for: ClientFor, alpha: Team) -> None:
    response = client_for(alpha.owner, alpha.workspace).get(DELETE)

    assert response.status_code == 200
    assert 'name="confirm"' in response.content.decode()


def test_privacy_page_offers_export_and_delete(client_for: ClientFor, alpha: Team) -> None:
    response = client_for(alpha.owner, alpha.workspace).get(reverse("accounts:privacy"))

    body = response.content.decode()
    assert response.status_code == 200
    assert f'action="{reverse("accounts:export")}"' in body
    assert f'action="{DELETE}"' in body
    assert 'name="password"' in body


def test_delete_removes_the_user_addresses_and_session(client_for: ClientFor, alpha: Team) -> None:
    user = alpha.member
    client = client_for(user, alpha.workspace)
    client.get(reverse("accounts:profile"))
    session_key = client.session.session_key

    response = client.post(DELETE, confirm())

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert not User.objects.filter(pk=user.pk).exists()
    assert not EmailAddress.objects.filter(email=user.email).exists()
    assert not UserSession.objects.filter(user_id=user.pk).exists()
    assert not import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key)
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("accounts:profile")).status_code == 302
    assert login_post(Client(), user.email, PASSWORD).status_code == 200


def test_delete_signs_out_the_users_other_sessions(client_for: ClientFor, alpha: Team) -> None:
    other_device = client_for(alpha.member, alpha.workspace)
    assert other_device.get(reverse("accounts:profile")).status_code == 200

    client_for(alpha.member, alpha.workspace).post(DELETE, confirm())

    assert other_device.get(reverse("accounts:profile")).status_code == 302


def test_solely_owned_workspaces_are_soft_deleted(client_for: ClientFor, alpha: Team) -> None:
    owner = alpha.owner
    side = workspace_create(acting_user=owner, name="Side Project")

    client_for(owner, alpha.workspace).post(DELETE, confirm())

    for workspace in (alpha.workspace, side):
        workspace.refresh_from_db()
        assert workspace.deleted_at is not None
        assert not Membership.objects.filter(workspace=workspace).exists()
    # The other members lost the workspace with it, but keep their accounts.
    assert User.objects.filter(pk__in=[alpha.admin.pk, alpha.member.pk]).count() == 2
    deleted = audit_rows("workspace.delete")
    assert {r.target_id for r in deleted} == {str(alpha.workspace.pk), str(side.pk)}
    assert {r.metadata["reason"] for r in deleted} == {"owner account deleted"}


def test_workspaces_with_another_owner_are_kept(client_for: ClientFor, alpha: Team) -> None:
    shared = WorkspaceFactory.create(name="Shared Studio")
    MembershipFactory.create(workspace=shared, user=alpha.owner, role=Role.OWNER)
    co_owner_membership = MembershipFactory.create(workspace=shared, user=alpha.admin, role=Role.OWNER)

    client_for(alpha.owner, alpha.workspace).post(DELETE, confirm())

    shared.refresh_from_db()
    assert shared.deleted_at is None
    assert list(Membership.objects.filter(workspace=shared)) == [co_owner_membership]


def test_workspaces_where_the_user_is_only_a_member_are_kept(client_for: ClientFor, alpha: Team) -> None:
    client_for(alpha.member, alpha.workspace).post(DELETE, confirm())

    alpha.workspace.refresh_from_db()
    assert alpha.workspace.deleted_at is None
    assert set(Membership.objects.filter(workspace=alpha.workspace).values_list("user_id", flat=True)) == {
        alpha.owner.pk,
        alpha.admin.pk,
    }


def test_an_admin_does_not_count_as_another_owner(client_for: ClientFor, alpha: Team) -> None:
    # Alpha has an admin and a member besides the owner; with no second owner it goes.
    client_for(alpha.owner, alpha.workspace).post(DELETE, confirm())

    alpha.workspace.refresh_from_db()
    assert alpha.workspace.deleted_at is not None


@pytest.mark.outsider("accounts:delete")
def test_other_tenants_are_untouched(client_for: ClientFor, alpha: Team, beta: Team) -> None:
    client_for(alpha.owner, alpha.workspace).post(DELETE, confirm())

    beta.workspace.refresh_from_db()
    assert beta.workspace.deleted_at is None
    assert Membership.objects.filter(workspace=beta.workspace).count() == 3


def test_audit_rows_are_anonymised_and_a_delete_row_is_written(client_for: ClientFor, alpha: Team) -> None:
    user = alpha.owner
    user_id = user.pk
    email = user.email
    audit_record(actor=user, action="workspace.rename", target=alpha.workspace, workspace=alpha.workspace)
    client = client_for(user, alpha.workspace)
    login_post(Client(), email, "a-wrong-password")  # leaves a login_failed row naming the address

    client.post(DELETE, confirm())

    label = f"deleted-user-{user_id}"
    acted = AuditEvent.objects.filter(actor_label=label)
    assert acted.filter(action="workspace.rename").exists()
    assert acted.filter(action="user.login").exists()
    assert not AuditEvent.objects.filter(actor_label=email).exists()
    [row] = audit_rows("user.delete")
    assert row.actor_label == label
    assert row.target_id == str(user_id)
    assert row.target_label == label
    assert row.metadata == {"self_service": True}
    # No row keeps the address anywhere, including the failed-login row's metadata.
    for event in AuditEvent.objects.all():
        assert email not in (event.actor_label, event.target_label, str(event.metadata)), event.action


def test_other_users_audit_rows_keep_their_labels(client_for: ClientFor, alpha: Team) -> None:
    audit_record(actor=alpha.admin, action="workspace.rename", target=alpha.workspace)

    client_for(alpha.owner, alpha.workspace).post(DELETE, confirm())

    assert AuditEvent.objects.filter(actor=alpha.admin, actor_label=alpha.admin.email).exists()


def test_delete_removes_the_avatar_file(
    client_for: ClientFor, alpha: Team, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    client.post(
        reverse("accounts:profile"),
        {
            "display_name": "M",
            "locale": "en",
            "timezone": "UTC",
            "avatar": SimpleUploadedFile("me.png", png_bytes(), content_type="image/png"),
        },
    )
    path = Path(User.objects.get(pk=alpha.member.pk).avatar.path)
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(DELETE, confirm())

    assert not path.exists()


def test_user_without_a_password_confirms_with_delete_only(client_for: ClientFor) -> None:
    user = UserFactory.create()
    user.set_unusable_password()
    user.save()
    client = client_for(user)

    assert 'name="password"' not in client.get(DELETE).content.decode()
    response = client.post(DELETE, {"confirm": "DELETE"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()


def test_staff_deleting_a_user_is_recorded_as_staff(alpha: Team, staff: User) -> None:
    user_id = alpha.member.pk

    user_delete(user=alpha.member, acting_user=staff)

    [row] = audit_rows("user.delete")
    assert row.actor == staff
    assert row.actor_label == staff.email
    assert row.metadata == {"self_service": False}
    assert row.target_label == f"deleted-user-{user_id}"


@pytest.mark.outsider("accounts:privacy", "accounts:delete")
def test_anonymous_privacy_and_delete_redirect_to_login(alpha: Team) -> None:
    client = Client()

    for url in (reverse("accounts:privacy"), DELETE):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('account_login')}?next={url}"
    response = client.post(DELETE, confirm())
    assert response.status_code == 302
    assert User.objects.filter(pk=alpha.owner.pk).exists()

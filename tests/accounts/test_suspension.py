"""Suspending and unsuspending users: the services, the admin actions and what a suspended
person sees."""

from __future__ import annotations

from importlib import import_module

import pytest
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import AccountError, user_suspend, user_unsuspend
from tests.accounts.helpers import audit_rows, is_authenticated_as, login_post
from tests.conftest import ClientFor, Team
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/user/"


def test_suspend_deactivates_the_user_and_records_the_staff_actor(staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="Chargeback fraud", acting_user=staff)

    member = User.objects.get(pk=alpha.member.pk)
    assert not member.is_active
    assert member.is_suspended
    assert member.suspension_reason == "Chargeback fraud"
    [row] = audit_rows("user.suspend")
    assert row.actor == staff
    assert row.target_id == str(member.pk)
    assert row.metadata == {"reason": "Chargeback fraud"}


def test_suspending_twice_writes_one_audit_row(staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="first", acting_user=staff)
    user_suspend(user=User.objects.get(pk=alpha.member.pk), reason="second", acting_user=staff)

    assert len(audit_rows("user.suspend")) == 1
    assert User.objects.get(pk=alpha.member.pk).suspension_reason == "first"


def test_staff_cannot_suspend_themselves(staff: User) -> None:
    with pytest.raises(AccountError):
        user_suspend(user=staff, reason="oops", acting_user=staff)

    staff.refresh_from_db()
    assert staff.is_active
    assert not audit_rows("user.suspend")


def test_unsuspend_reactivates_and_records_the_staff_actor(staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    user_unsuspend(user=User.objects.get(pk=alpha.member.pk), acting_user=staff)

    member = User.objects.get(pk=alpha.member.pk)
    assert member.is_active
    assert member.suspended_at is None
    assert member.suspension_reason == ""
    [row] = audit_rows("user.unsuspend")
    assert row.actor == staff
    assert row.target_id == str(member.pk)


def test_unsuspending_an_active_user_changes_nothing(staff: User, alpha: Team) -> None:
    user_unsuspend(user=alpha.member, acting_user=staff)

    assert not audit_rows("user.unsuspend")


def test_suspended_user_cannot_log_in_and_sees_the_suspended_page(staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)
    client = Client()

    response = login_post(client, alpha.member.email, PASSWORD)

    assert response.status_code == 403
    assert "Your account is suspended" in response.content.decode()
    assert not is_authenticated_as(client, alpha.member)
    assert client.get(reverse("accounts:profile")).status_code == 302


def test_existing_session_of_a_suspended_user_is_signed_out(client_for: ClientFor, staff: User, alpha: Team) -> None:
    client = client_for(alpha.member, alpha.workspace)
    assert client.get(reverse("accounts:profile")).status_code == 200
    session_key = client.session.session_key

    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    # The session itself is gone, not merely refused because the user is inactive.
    assert not import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key)
    assert not UserSession.objects.filter(user=alpha.member).exists()
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_suspension_leaves_other_users_sessions_alone(client_for: ClientFor, staff: User, alpha: Team) -> None:
    other = client_for(alpha.admin, alpha.workspace)
    assert other.get(reverse("accounts:profile")).status_code == 200

    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    assert other.get(reverse("accounts:profile")).status_code == 200


def test_unsuspend_restores_login(staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)
    user_unsuspend(user=User.objects.get(pk=alpha.member.pk), acting_user=staff)
    client = Client()

    response = login_post(client, alpha.member.email, PASSWORD)

    assert response.status_code == 302
    assert is_authenticated_as(client, alpha.member)


def test_suspended_user_cannot_request_a_password_reset_link(client: Client, staff: User, alpha: Team) -> None:
    from django.core import mail

    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    client.post("/accounts/password/reset/", {"email": alpha.member.email})

    assert not any("/accounts/password/reset/key/" in m.body for m in mail.outbox)


# ---------------------------------------------------------------------------- admin actions


def test_admin_suspend_action_first_asks_for_a_reason(staff_client: Client, alpha: Team) -> None:
    response = staff_client.post(CHANGELIST, {"action": "suspend", "_selected_action": [alpha.member.pk]})

    assert response.status_code == 200
    assert "admin/accounts/suspend.html" in [t.name for t in response.templates]
    body = response.content.decode()
    assert alpha.member.email in body
    assert 'name="reason"' in body
    assert User.objects.get(pk=alpha.member.pk).is_active
    assert not audit_rows("user.suspend")


def test_admin_suspend_action_applies_with_a_reason(staff_client: Client, staff: User, alpha: Team) -> None:
    response = staff_client.post(
        CHANGELIST,
        {
            "action": "suspend",
            "_selected_action": [alpha.member.pk, alpha.admin.pk],
            "apply": "1",
            "reason": "Abuse report #42",
        },
    )

    assert response.status_code == 302
    for user in (alpha.member, alpha.admin):
        user.refresh_from_db()
        assert user.is_suspended
        assert user.suspension_reason == "Abuse report #42"
    rows = audit_rows("user.suspend")
    assert {r.target_id for r in rows} == {str(alpha.member.pk), str(alpha.admin.pk)}
    assert {r.actor for r in rows} == {staff}
    assert User.objects.get(pk=alpha.owner.pk).is_active


def test_admin_suspend_action_without_a_reason_shows_the_form_again(staff_client: Client, alpha: Team) -> None:
    response = staff_client.post(
        CHANGELIST, {"action": "suspend", "_selected_action": [alpha.member.pk], "apply": "1", "reason": ""}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert User.objects.get(pk=alpha.member.pk).is_active


def test_admin_suspend_action_refuses_to_suspend_the_acting_staff(
    staff_client: Client, staff: User, alpha: Team
) -> None:
    response = staff_client.post(
        CHANGELIST,
        {"action": "suspend", "_selected_action": [staff.pk, alpha.member.pk], "apply": "1", "reason": "cleanup"},
        follow=True,
    )

    staff.refresh_from_db()
    assert staff.is_active
    assert User.objects.get(pk=alpha.member.pk).is_suspended
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("cannot suspend yourself" in t for t in texts)
    assert any("Suspended 1 user(s)." in t for t in texts)
    assert [r.target_id for r in audit_rows("user.suspend")] == [str(alpha.member.pk)]


def test_admin_unsuspend_action(staff_client: Client, staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    response = staff_client.post(CHANGELIST, {"action": "unsuspend", "_selected_action": [alpha.member.pk]})

    assert response.status_code == 302
    assert User.objects.get(pk=alpha.member.pk).is_active
    [row] = audit_rows("user.unsuspend")
    assert row.actor == staff


def test_admin_suspended_user_then_cannot_log_in(staff_client: Client, alpha: Team) -> None:
    staff_client.post(
        CHANGELIST,
        {"action": "suspend", "_selected_action": [alpha.member.pk], "apply": "1", "reason": "spam"},
    )
    client = Client()

    response = login_post(client, alpha.member.email, PASSWORD)

    assert response.status_code == 403
    assert not is_authenticated_as(client, alpha.member)


def test_non_staff_cannot_run_admin_actions(client_for: ClientFor, alpha: Team) -> None:
    client = client_for(alpha.owner, alpha.workspace)

    response = client.post(
        CHANGELIST, {"action": "suspend", "_selected_action": [alpha.member.pk], "apply": "1", "reason": "x"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert User.objects.get(pk=alpha.member.pk).is_active


def test_suspended_page_names_support_address(staff: User) -> None:
    victim = UserFactory.create()
    user_suspend(user=victim, reason="spam", acting_user=staff)

    response = login_post(Client(), victim.email, PASSWORD)

    assert "mailto:support@aikeedo.local" in response.content.decode()

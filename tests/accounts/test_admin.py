"""The user admin as a back office: search, filters, memberships inline, support actions and a
pinned changelist query count."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from allauth.account.models import EmailAddress
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client

from apps.accounts.models import User
from apps.accounts.services import user_suspend
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests.accounts.helpers import audit_rows, is_authenticated_as, link_in_mail, login_post
from tests.conftest import Team
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/user/"


def listed(response: TestResponse) -> list[str]:
    return sorted(u.email for u in response.context["cl"].result_list)


def test_changelist_search_by_email(staff_client: Client, alpha: Team, beta: Team) -> None:
    response = staff_client.get(CHANGELIST, {"q": "beta-admin"})

    assert response.status_code == 200
    assert listed(response) == ["beta-admin@example.com"]


def test_changelist_search_by_a_secondary_address_lists_the_user_once(staff_client: Client, alpha: Team) -> None:
    EmailAddress.objects.create(user=alpha.member, email="pending-new@example.com", verified=False, primary=False)

    response = staff_client.get(CHANGELIST, {"q": "example.com"})
    by_secondary = staff_client.get(CHANGELIST, {"q": "pending-new"})

    assert listed(by_secondary) == ["alpha-member@example.com"]
    emails = listed(response)
    assert len(emails) == len(set(emails))


def test_changelist_filters_suspended_users(staff_client: Client, staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    inactive = staff_client.get(CHANGELIST, {"is_active__exact": "0"})
    suspended = staff_client.get(CHANGELIST, {"suspended_at__isempty": "0"})
    not_suspended = staff_client.get(CHANGELIST, {"suspended_at__isempty": "1"})

    assert listed(inactive) == ["alpha-member@example.com"]
    assert listed(suspended) == ["alpha-member@example.com"]
    assert "alpha-member@example.com" not in listed(not_suspended)
    assert "alpha-owner@example.com" in listed(not_suspended)


def test_changelist_filters_staff(staff_client: Client, staff: User, alpha: Team) -> None:
    response = staff_client.get(CHANGELIST, {"is_staff__exact": "1"})

    assert listed(response) == [staff.email]


def test_change_page_shows_memberships_inline(staff_client: Client, alpha: Team, beta: Team) -> None:
    lab = WorkspaceFactory.create(name="Moonbase Lab")
    MembershipFactory.create(workspace=lab, user=alpha.member, role=Role.ADMIN)

    response = staff_client.get(f"{CHANGELIST}{alpha.member.pk}/change/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpha" in body
    assert "Moonbase Lab" in body
    assert "Beta" not in body
    [formset] = [f for f in response.context["inline_admin_formsets"] if f.opts.model is Membership]
    assert {form.instance.workspace.name for form in formset.formset.forms} == {"Alpha", "Moonbase Lab"}


def test_add_user_page_has_no_memberships_inline(staff_client: Client) -> None:
    response = staff_client.get(f"{CHANGELIST}add/")

    assert response.status_code == 200
    assert not response.context["inline_admin_formsets"]


def test_user_added_in_admin_gets_an_address_a_personal_workspace_and_an_audit_row(
    staff_client: Client, staff: User
) -> None:
    response = staff_client.post(
        f"{CHANGELIST}add/",
        {"email": "Added@Example.com", "password1": "Xyzzy-long-pass-1", "password2": "Xyzzy-long-pass-1"},
    )

    assert response.status_code == 302
    user = User.objects.get(email="added@example.com")
    address = EmailAddress.objects.get(user=user)
    assert (address.email, address.primary, address.verified) == ("added@example.com", True, False)
    membership = Membership.objects.select_related("workspace").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.is_personal
    [row] = audit_rows("user.create")
    assert row.actor == staff
    assert row.target_id == str(user.pk)


def test_changing_the_email_in_admin_keeps_the_login_address_in_step(staff_client: Client, alpha: Team) -> None:
    user = alpha.member
    page = staff_client.get(f"{CHANGELIST}{user.pk}/change/")
    data = {
        k: v
        for k, v in page.context["adminform"].form.initial.items()
        if k in {"display_name", "locale", "timezone", "date_joined"}
    }

    response = staff_client.post(
        f"{CHANGELIST}{user.pk}/change/",
        {
            **data,
            "email": "Renamed@Example.com",
            "preferences": "{}",
            "is_active": "on",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(alpha.member_membership.pk),
            "memberships-0-user": str(user.pk),
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.email == "renamed@example.com"
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "primary")) == [
        ("renamed@example.com", True)
    ]
    old = Client()
    login_post(old, "alpha-member@example.com", "correct-horse-battery-9")
    assert not is_authenticated_as(old, user)
    [row] = audit_rows("user.email_change")
    assert row.metadata["from"] == "alpha-member@example.com"
    assert row.metadata["to"] == "renamed@example.com"


def test_verify_email_action_marks_the_primary_address_verified(staff_client: Client, staff: User) -> None:
    user = UserFactory.create(email="unverified@example.com", verified=False)

    response = staff_client.post(CHANGELIST, {"action": "verify_email", "_selected_action": [user.pk]})

    assert response.status_code == 302
    address = EmailAddress.objects.get(user=user)
    assert address.verified
    assert address.primary
    [row] = audit_rows("user.email_verify")
    assert row.actor == staff
    assert row.target_id == str(user.pk)
    assert row.metadata == {"email": "unverified@example.com"}


def test_verify_email_action_on_a_verified_user_writes_nothing(staff_client: Client, alpha: Team) -> None:
    staff_client.post(CHANGELIST, {"action": "verify_email", "_selected_action": [alpha.member.pk]})

    assert EmailAddress.objects.get(user=alpha.member).verified
    assert not audit_rows("user.email_verify")


def test_verify_email_action_creates_the_address_when_missing(staff_client: Client) -> None:
    user = User.objects.create_user(email="bare@example.com", password="x-long-password-1")

    staff_client.post(CHANGELIST, {"action": "verify_email", "_selected_action": [user.pk]})

    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified", "primary")) == [
        ("bare@example.com", True, True)
    ]


def test_verify_email_action_when_another_address_is_primary(staff_client: Client) -> None:
    user = UserFactory.create(email="current@example.com")
    EmailAddress.objects.filter(user=user).update(email="stale@example.com")

    response = staff_client.post(CHANGELIST, {"action": "verify_email", "_selected_action": [user.pk]})

    assert response.status_code == 302
    primary = EmailAddress.objects.get(user=user, primary=True)
    assert (primary.email, primary.verified) == ("current@example.com", True)


def test_send_password_reset_action_mails_a_working_link(staff_client: Client, staff: User, alpha: Team) -> None:
    response = staff_client.post(CHANGELIST, {"action": "send_password_reset", "_selected_action": [alpha.member.pk]})

    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[alpha.member.email]]
    path = link_in_mail(alpha.member.email, "/accounts/password/reset/key/")
    client = Client()
    form_path = client.get(path)["Location"]
    client.post(form_path, {"password1": "a-brand-new-pass-77", "password2": "a-brand-new-pass-77"})
    assert User.objects.get(pk=alpha.member.pk).check_password("a-brand-new-pass-77")
    [row] = audit_rows("user.password_reset_send")
    assert row.actor == staff
    assert row.target_id == str(alpha.member.pk)


def test_send_password_reset_action_skips_suspended_users(staff_client: Client, staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)

    response = staff_client.post(
        CHANGELIST, {"action": "send_password_reset", "_selected_action": [alpha.member.pk]}, follow=True
    )

    assert not mail.outbox
    assert not audit_rows("user.password_reset_send")
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("suspended" in t for t in texts)
    assert any("Sent 0 password reset email(s)." in t for t in texts)


def test_changelist_query_count_does_not_grow_with_users(staff_client: Client, django_assert_max_num_queries) -> None:
    for _ in range(30):
        UserFactory.create()
    staff_client.get(CHANGELIST)  # first request stores the runtime config defaults

    with django_assert_max_num_queries(16):
        response = staff_client.get(CHANGELIST)
    with django_assert_max_num_queries(16):
        searched = staff_client.get(CHANGELIST, {"q": "example.com", "is_active__exact": "1"})

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 31
    assert len(searched.context["cl"].result_list) == 31


def test_admin_is_closed_to_non_staff(client_for, alpha: Team) -> None:
    client = client_for(alpha.owner, alpha.workspace)

    for url in (CHANGELIST, f"{CHANGELIST}{alpha.member.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_change_form_cannot_reactivate_a_suspended_user(staff_client: Client, staff: User, alpha: Team) -> None:
    user_suspend(user=alpha.member, reason="spam", acting_user=staff)
    url = f"{CHANGELIST}{alpha.member.pk}/change/"
    page = staff_client.get(url)

    assert "is_active" not in page.context["adminform"].form.fields
    staff_client.post(
        url,
        {
            "email": alpha.member.email,
            "locale": "en",
            "timezone": "UTC",
            "preferences": "{}",
            "is_active": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    member = User.objects.get(pk=alpha.member.pk)
    assert not member.is_active
    assert member.is_suspended


def test_admin_delete_goes_through_account_deletion(staff_client: Client, staff: User, alpha: Team) -> None:
    owner_id = alpha.owner.pk

    response = staff_client.post(f"{CHANGELIST}{owner_id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=owner_id).exists()
    alpha.workspace.refresh_from_db()
    assert alpha.workspace.deleted_at is not None
    [row] = audit_rows("user.delete")
    assert row.actor == staff
    assert row.target_label == f"deleted-user-{owner_id}"


def test_admin_bulk_delete_goes_through_account_deletion(staff_client: Client, staff: User, alpha: Team) -> None:
    ids = [alpha.owner.pk, alpha.member.pk]

    response = staff_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk__in=ids).exists()
    alpha.workspace.refresh_from_db()
    assert alpha.workspace.deleted_at is not None
    assert {r.target_id for r in audit_rows("user.delete")} == {str(i) for i in ids}
    assert not audit_rows("user.delete", actor_label__in=["alpha-owner@example.com", "alpha-member@example.com"])


def _change_post(client: Client, user: User, membership_pk: int, **fields: str) -> TestResponse:
    return client.post(
        f"{CHANGELIST}{user.pk}/change/",
        {
            "email": user.email,
            "display_name": user.display_name,
            "locale": user.locale,
            "timezone": user.timezone,
            "preferences": "{}",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(membership_pk),
            "memberships-0-user": str(user.pk),
            **fields,
        },
    )


def test_superuser_granting_staff_writes_an_access_change_row(staff_client: Client, staff: User, alpha: Team) -> None:
    user = alpha.member

    response = _change_post(staff_client, user, alpha.member_membership.pk, is_staff="on")

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_staff
    [row] = audit_rows("user.access_change")
    assert row.actor == staff
    assert row.target_id == str(user.pk)
    assert row.metadata == {"is_staff": "True"}


def test_staff_without_superuser_cannot_grant_superuser(alpha: Team) -> None:
    from django.contrib.auth.models import Permission

    clerk = UserFactory.create(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client = Client()
    client.force_login(clerk)
    target = alpha.member

    response = _change_post(client, target, alpha.member_membership.pk, is_superuser="on", is_staff="on")

    assert response.status_code == 302
    target.refresh_from_db()
    clerk.refresh_from_db()
    assert (target.is_superuser, target.is_staff) == (False, False)
    response = _change_post(client, clerk, 0, is_superuser="on")
    clerk.refresh_from_db()
    assert not clerk.is_superuser
    assert audit_rows("user.access_change") == []


def test_admin_password_change_is_audited(staff_client: Client, staff: User, alpha: Team) -> None:
    user = alpha.member

    response = staff_client.post(
        f"{CHANGELIST}{user.pk}/password/",
        {"password1": "a-new-long-password-42", "password2": "a-new-long-password-42", "usable_password": "true"},
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-new-long-password-42")
    [row] = audit_rows("user.password_set_by_staff")
    assert row.actor == staff
    assert row.target_id == str(user.pk)

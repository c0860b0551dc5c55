"""Inviting, resending, revoking and accepting invitations, up to a stranger signing up from
the emailed link."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from constance.test.pytest import override_config
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.workspaces import services
from apps.workspaces.exceptions import InvitationInvalid, WorkspaceError, WorkspaceLimitReached
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.models import Invitation, Membership
from apps.workspaces.roles import Role
from apps.workspaces.tasks import send_invitation_email
from tests.factories import UserFactory
from tests.workspaces.conftest import unchanged

pytestmark = pytest.mark.django_db

INVITE = reverse("workspaces:invite")
MEMBERS = reverse("workspaces:members")
LINK_RE = re.compile(r"https?://\S+/workspaces/invitations/(?P<token>[A-Za-z0-9_-]+)/")


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _accept_url(token: str) -> str:
    return reverse("workspaces:invitation_accept", args=[token])


def _token_from(message) -> str:
    match = LINK_RE.search(message.body)
    assert match, message.body
    return match["token"]


# ---------------------------------------------------------------------------- invite


@pytest.mark.parametrize(("inviter", "role"), [("owner", "owner"), ("owner", "admin"), ("admin", "admin")])
def test_manager_invites_and_the_email_carries_the_accept_link(
    client_for, alpha, mailoutbox, django_capture_on_commit_callbacks, settings, inviter, role
):
    settings.SITE_URL = ""
    client = client_for(getattr(alpha, inviter), alpha.workspace)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(INVITE, {"email": "  New.Person@Example.com ", "role": role})

    assert response.status_code == 302
    assert response["Location"] == MEMBERS
    invitation = Invitation.objects.get(workspace=alpha.workspace)
    assert invitation.email == "new.person@example.com"
    assert invitation.role == role
    assert invitation.invited_by == getattr(alpha, inviter)
    assert invitation.status == Invitation.Status.PENDING
    assert [m.to for m in mailoutbox] == [["new.person@example.com"]]
    message = mailoutbox[0]
    assert "Alpha" in message.subject
    token = _token_from(message)
    # No SITE_URL: the link is on the address the inviter used (the test client's host).
    assert f"http://testserver{_accept_url(token)}" in message.body
    # The link in the email is the one that opens this invitation.
    page = Client().get(_accept_url(token))
    assert page.status_code == 200
    assert page.context["invitation"] == invitation


def test_the_link_is_on_the_port_the_inviter_uses(
    client_for, alpha, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = ""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    client = client_for(alpha.owner, alpha.workspace)

    # The email task runs after the request (as a worker would): the address travels with it.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(INVITE, {"email": "port@example.com", "role": "member"}, HTTP_HOST="127.0.0.1:8031")

    token = _token_from(mailoutbox[0])
    assert f"http://127.0.0.1:8031{_accept_url(token)}" in mailoutbox[0].body


def test_an_explicit_site_url_is_the_links_address(
    client_for, alpha, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://aikeedo.example.com"
    client = client_for(alpha.owner, alpha.workspace)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(INVITE, {"email": "site@example.com", "role": "member"})

    token = _token_from(mailoutbox[0])
    assert f"https://aikeedo.example.com{_accept_url(token)}" in mailoutbox[0].body
    assert "testserver" not in mailoutbox[0].body


def test_invite_stores_only_a_hash_of_the_token(alpha, invite, mailoutbox):
    invitation, token = invite(alpha, "new@example.com")

    assert token == _token_from(mailoutbox[0])
    assert len(token) >= 40
    assert invitation.token_hash == services.hash_token(token)
    row = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert token not in {str(value) for value in row.values()}


def test_member_cannot_invite(client_for, alpha, mailoutbox, django_capture_on_commit_callbacks):
    with unchanged(), django_capture_on_commit_callbacks(execute=True):
        response = client_for(alpha.member, alpha.workspace).post(INVITE, {"email": "x@example.com", "role": "member"})

    assert response.status_code == 403
    assert mailoutbox == []


def test_admin_cannot_invite_as_owner(client_for, alpha, mailoutbox, django_capture_on_commit_callbacks):
    with unchanged(), django_capture_on_commit_callbacks(execute=True):
        response = client_for(alpha.admin, alpha.workspace).post(INVITE, {"email": "x@example.com", "role": "owner"})

    assert response.status_code == 403
    assert _messages(response) == ["You cannot give a role higher than your own."]
    assert mailoutbox == []


@pytest.mark.parametrize("email", ["alpha-member@example.com", "ALPHA-Admin@Example.COM"])
def test_inviting_an_existing_member_is_refused_with_message(client_for, alpha, mailoutbox, email):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(INVITE, {"email": email, "role": "member"})

    assert response.status_code == 400
    assert _messages(response) == [f"{email.lower()} is already a member of this workspace."]
    assert mailoutbox == []


def test_duplicate_pending_invitation_is_refused(client_for, alpha, invite, mailoutbox):
    invite(alpha, "twice@example.com")
    mailoutbox.clear()

    with unchanged():
        response = client_for(alpha.admin, alpha.workspace).post(
            INVITE, {"email": "Twice@example.com", "role": "member"}
        )

    assert response.status_code == 400
    assert _messages(response) == ["twice@example.com already has a pending invitation. Resend it instead."]
    assert mailoutbox == []


def test_an_expired_invitation_is_replaced_by_a_new_one(alpha, invite):
    old, _ = invite(alpha, "again@example.com")
    Invitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    new, _ = invite(alpha, "again@example.com")

    old.refresh_from_db()
    assert old.status == Invitation.Status.REVOKED
    assert new.status == Invitation.Status.PENDING


def test_same_email_can_be_invited_to_two_workspaces(alpha, beta, invite):
    invite(alpha, "popular@example.com")
    invite(beta, "popular@example.com")

    assert Invitation.objects.filter(email="popular@example.com").open().count() == 2


@override_config(MAX_MEMBERS_PER_WORKSPACE=5)
def test_member_limit_counts_members_and_pending_invitations(client_for, alpha, invite, mailoutbox):
    invite(alpha, "fourth@example.com")
    invite(alpha, "fifth@example.com")
    mailoutbox.clear()

    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(
            INVITE, {"email": "sixth@example.com", "role": "member"}
        )

    assert response.status_code == 400
    assert _messages(response) == [
        "This workspace has 3 members and 2 pending invitations; the plan allows 5. "
        "Remove someone or revoke an invitation first."
    ]
    assert mailoutbox == []


@override_config(MAX_MEMBERS_PER_WORKSPACE=4)
def test_expired_and_revoked_invitations_free_their_seat(alpha, invite):
    expired, _ = invite(alpha, "expired@example.com")
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    revoked, _ = invite(alpha, "revoked@example.com")
    services.workspace_invitation_revoke(invitation=revoked, acting_user=alpha.owner)

    invitation, _ = invite(alpha, "last-seat@example.com")
    assert invitation.is_open


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-email", "role": "member"}, "email"),
        ({"email": "", "role": "member"}, "email"),
        ({"email": "x@example.com", "role": "superuser"}, "role"),
    ],
)
def test_invalid_invite_form_gives_400_with_field_error(client_for, alpha, data, field):
    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(INVITE, data)

    assert response.status_code == 400
    assert field in response.context["invite_form"].errors


def test_invite_service_refuses_an_unknown_role(alpha):
    with unchanged(), pytest.raises(WorkspaceError, match="valid role"):
        services.workspace_member_invite(
            workspace=alpha.workspace, email="x@example.com", role="root", acting_user=alpha.owner
        )


def test_invitation_email_subject_stays_one_line_whatever_the_inviter_name(alpha, invite, mailoutbox):
    alpha.owner.display_name = "Mallory\nBcc: victim@example.com"
    alpha.owner.save()

    invite(alpha, "x@example.com")

    assert len(mailoutbox) == 1
    assert "\n" not in mailoutbox[0].subject
    assert mailoutbox[0].subject.startswith("Mallory Bcc: victim@example.com invited you to Alpha")


# ---------------------------------------------------------------------------- accept


def test_invitee_accepts_with_the_invited_role_and_lands_in_the_workspace(client_for, alpha, invite):
    invitation, token = invite(alpha, "newcomer@example.com", role=Role.ADMIN)
    newcomer = UserFactory.create(email="newcomer@example.com")
    client = client_for(newcomer)

    page = client.get(_accept_url(token))
    response = client.post(_accept_url(token))

    assert page.status_code == 200
    assert "Accept invitation" in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    membership = Membership.objects.get(workspace=alpha.workspace, user=newcomer)
    assert membership.role == Role.ADMIN
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert invitation.accepted_by == newcomer
    assert invitation.status == Invitation.Status.ACCEPTED
    assert client.session[SESSION_KEY] == alpha.workspace.pk
    assert client.get(reverse("dashboard")).context["current_workspace"] == alpha.workspace


def test_accept_matches_a_verified_secondary_address(client_for, alpha, invite):
    _, token = invite(alpha, "work@example.com")
    user = UserFactory.create(email="home@example.com")
    EmailAddress.objects.create(user=user, email="Work@Example.com", verified=True, primary=False)

    response = client_for(user).post(_accept_url(token))

    assert response.status_code == 302
    assert Membership.objects.filter(workspace=alpha.workspace, user=user).exists()


def test_accept_with_the_wrong_email_shows_a_clear_error_and_changes_nothing(client_for, alpha, invite, outsider):
    _, token = invite(alpha, "intended@example.com")
    client = client_for(outsider)

    page = client.get(_accept_url(token))
    with unchanged():
        response = client.post(_accept_url(token))

    assert page.status_code == 200
    assert 'data-testid="invitation-wrong-account"' in page.content.decode()
    assert "Accept invitation" not in page.content.decode()
    assert response.status_code == 400
    assert response.context["error"] == (
        "This invitation was sent to intended@example.com. Sign in with that address (verified) to accept it."
    )
    assert SESSION_KEY not in client.session


def test_accept_with_an_unverified_matching_email_is_refused(client_for, alpha, invite):
    _, token = invite(alpha, "unverified@example.com")
    user = UserFactory.create(email="unverified@example.com", verified=False)

    with unchanged():
        response = client_for(user).post(_accept_url(token))

    assert response.status_code == 400
    assert "Sign in with that address (verified)" in response.context["error"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_expired_invitation_answers_410_with_message(client_for, alpha, invite, method):
    invitation, token = invite(alpha, "late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = UserFactory.create(email="late@example.com")

    with unchanged():
        response = getattr(client_for(late), method)(_accept_url(token))

    assert response.status_code == 410
    assert response.context["error"] == "This invitation has expired. Ask for a new one."
    assert "This invitation has expired." in response.content.decode()


def test_accept_service_refuses_an_expired_invitation(alpha, invite):
    invitation, token = invite(alpha, "late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = UserFactory.create(email="late@example.com")

    with unchanged(), pytest.raises(InvitationInvalid, match="expired"):
        services.workspace_invitation_accept(token=token, acting_user=late)


def test_revoked_invitation_answers_with_message(client_for, alpha, invite):
    invitation, token = invite(alpha, "nope@example.com")
    services.workspace_invitation_revoke(invitation=invitation, acting_user=alpha.admin)
    nope = UserFactory.create(email="nope@example.com")

    with unchanged():
        response = client_for(nope).post(_accept_url(token))

    assert response.status_code == 410
    assert response.context["error"] == "This invitation was revoked. Ask for a new one."
    assert not Membership.objects.filter(user=nope).exists()


def test_invitation_used_twice_refuses_the_second_time(client_for, alpha, invite):
    _, token = invite(alpha, "shared@example.com")
    first = UserFactory.create(email="shared@example.com")
    second = UserFactory.create(email="other@example.com")
    EmailAddress.objects.create(user=second, email="shared@example.com", verified=False)
    assert client_for(first).post(_accept_url(token)).status_code == 302

    with unchanged():
        again = client_for(first).post(_accept_url(token))
        other = client_for(second).post(_accept_url(token))

    assert again.status_code == 410
    assert again.context["error"] == "This invitation was already used."
    assert other.status_code == 410
    assert not Membership.objects.filter(user=second).exists()


def test_accept_service_refuses_a_used_invitation(alpha, invite):
    _, token = invite(alpha, "shared@example.com")
    user = UserFactory.create(email="shared@example.com")
    services.workspace_invitation_accept(token=token, acting_user=user)

    with unchanged(), pytest.raises(InvitationInvalid, match="already used"):
        services.workspace_invitation_accept(token=token, acting_user=user)


@pytest.mark.parametrize("token", ["not-a-real-token", "x" * 300])
def test_unknown_token_answers_404(client_for, alpha, outsider, token):
    with unchanged():
        response = client_for(outsider).post(_accept_url(token))

    assert response.status_code == 404
    assert response.context["error"] == "This invitation link is not valid."


@override_config(MAX_MEMBERS_PER_WORKSPACE=4)
def test_accept_refused_when_the_workspace_is_full(client_for, alpha, invite):
    _, token = invite(alpha, "waiting@example.com")
    waiting = UserFactory.create(email="waiting@example.com")
    # The seat went to someone else meanwhile (e.g. the limit was lowered by staff).
    Membership.objects.create(workspace=alpha.workspace, user=UserFactory.create(), role=Role.MEMBER)

    with unchanged():
        response = client_for(waiting).post(_accept_url(token))

    assert response.status_code == 400
    assert response.context["error"] == "This workspace is full. Ask an admin to make room."


def test_anonymous_visitor_sees_login_and_signup_links_back_to_the_invitation(client, alpha, invite):
    _, token = invite(alpha, "guest@example.com", role=Role.ADMIN)

    response = client.get(_accept_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Join “Alpha”" in html
    assert "guest@example.com" in html
    assert "as admin" in html
    for name in ("login_url", "signup_url"):
        url = urlsplit(response.context[name])
        assert url.path == reverse({"login_url": "account_login", "signup_url": "account_signup"}[name])
        assert parse_qs(url.query) == {"next": [_accept_url(token)]}
        assert f'href="{response.context[name]}"' in html


def test_anonymous_post_accepts_nothing(client, alpha, invite):
    _, token = invite(alpha, "guest@example.com")

    with unchanged():
        response = client.post(_accept_url(token))

    assert response.status_code == 200
    assert "Accept invitation" not in response.content.decode()


# ---------------------------------------------------------------------------- resend / revoke


def test_resend_issues_a_new_token_and_expiry_and_the_old_link_stops_working(
    client_for, alpha, invite, mailoutbox, django_capture_on_commit_callbacks
):
    invitation, old_token = invite(alpha, "slow@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alpha.admin, alpha.workspace).post(
            reverse("workspaces:invitation_resend", args=[invitation.pk])
        )

    assert response.status_code == 302
    assert response["Location"] == MEMBERS
    assert [m.to for m in mailoutbox] == [["slow@example.com"]]
    new_token = _token_from(mailoutbox[0])
    assert new_token != old_token
    invitation.refresh_from_db()
    assert invitation.token_hash == services.hash_token(new_token)
    assert invitation.expires_at > timezone.now() + timedelta(days=6)
    assert invitation.send_count == 2
    slow = UserFactory.create(email="slow@example.com")
    assert client_for(slow).post(_accept_url(old_token)).status_code == 404
    assert client_for(slow).post(_accept_url(new_token)).status_code == 302
    assert Membership.objects.filter(workspace=alpha.workspace, user=slow).exists()


def test_resend_reopens_an_expired_invitation(alpha, invite):
    invitation, _ = invite(alpha, "slow@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))

    resent, _ = services.workspace_invitation_resend(invitation=invitation, acting_user=alpha.owner)

    assert resent.status == Invitation.Status.PENDING


@override_config(MAX_MEMBERS_PER_WORKSPACE=4)
def test_resending_an_expired_invitation_respects_the_member_limit(alpha, invite):
    expired, _ = invite(alpha, "expired@example.com")
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    invite(alpha, "took-the-seat@example.com")
    expired.refresh_from_db()

    with unchanged(), pytest.raises(WorkspaceLimitReached):
        services.workspace_invitation_resend(invitation=expired, acting_user=alpha.owner)


def test_a_stale_email_task_does_not_send_a_dead_link(alpha, invite, mailoutbox):
    invitation, old_token = invite(alpha, "slow@example.com")
    services.workspace_invitation_resend(invitation=invitation, acting_user=alpha.owner)
    mailoutbox.clear()

    # A queued (or retried) task for the first token runs after the resend.
    send_invitation_email(invitation.pk, old_token)

    assert mailoutbox == []


def test_email_task_sends_nothing_for_a_revoked_invitation(alpha, invite, mailoutbox):
    invitation, token = invite(alpha, "gone@example.com")
    services.workspace_invitation_revoke(invitation=invitation, acting_user=alpha.owner)
    mailoutbox.clear()

    send_invitation_email(invitation.pk, token)

    assert mailoutbox == []


def test_revoke_stops_the_link(client_for, alpha, invite):
    invitation, token = invite(alpha, "gone@example.com")

    response = client_for(alpha.admin, alpha.workspace).post(
        reverse("workspaces:invitation_revoke", args=[invitation.pk])
    )

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert invitation.status == Invitation.Status.REVOKED
    assert Client().get(_accept_url(token)).status_code == 410


@pytest.mark.parametrize("url_name", ["workspaces:invitation_resend", "workspaces:invitation_revoke"])
def test_member_cannot_resend_or_revoke(client_for, alpha, invite, mailoutbox, url_name):
    invitation, _ = invite(alpha, "x@example.com")
    mailoutbox.clear()

    with unchanged():
        response = client_for(alpha.member, alpha.workspace).post(reverse(url_name, args=[invitation.pk]))

    assert response.status_code == 403
    assert mailoutbox == []


@pytest.mark.parametrize("url_name", ["workspaces:invitation_resend", "workspaces:invitation_revoke"])
@pytest.mark.parametrize("state", ["accepted", "revoked"])
def test_resend_or_revoke_of_a_closed_invitation_is_refused(client_for, alpha, invite, url_name, state):
    invitation, token = invite(alpha, "closed@example.com")
    if state == "accepted":
        services.workspace_invitation_accept(token=token, acting_user=UserFactory.create(email="closed@example.com"))
    else:
        services.workspace_invitation_revoke(invitation=invitation, acting_user=alpha.owner)

    with unchanged():
        response = client_for(alpha.owner, alpha.workspace).post(reverse(url_name, args=[invitation.pk]))

    assert response.status_code == 400
    assert _messages(response) == ["This invitation was already accepted or revoked."]


# ---------------------------------------------------------------------------- from the email to a member


def test_stranger_signs_up_from_the_link_and_joins_without_a_verification_email(
    alpha, invite, mailoutbox, password, django_capture_on_commit_callbacks
):
    invitation, token = invite(alpha, "stranger@example.com")
    mailoutbox.clear()
    browser = Client()

    page = browser.get(_accept_url(token))
    signup_url = page.context["signup_url"]
    assert browser.get(signup_url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        signed_up = browser.post(
            signup_url,
            {"email": "stranger@example.com", "password1": password, "password2": password, "next": _accept_url(token)},
        )

    # Signed in at once (no "verify your email" stop) and sent back to the invitation.
    assert signed_up.status_code == 302
    assert signed_up["Location"] == _accept_url(token)
    assert mailoutbox == []
    stranger = User.objects.get(email="stranger@example.com")
    assert EmailAddress.objects.get(user=stranger).verified
    back = browser.get(signed_up["Location"])
    assert back.status_code == 200
    assert back.context["user"] == stranger
    assert "Accept invitation" in back.content.decode()

    accepted = browser.post(_accept_url(token))

    assert accepted.status_code == 302
    assert Membership.objects.get(workspace=alpha.workspace, user=stranger).role == Role.MEMBER
    invitation.refresh_from_db()
    assert invitation.accepted_by == stranger
    assert browser.get(reverse("dashboard")).context["current_workspace"] == alpha.workspace
    # Sign-up also gave them their personal workspace.
    assert Membership.objects.filter(user=stranger, workspace__is_personal=True, role=Role.OWNER).exists()


def test_existing_user_logs_in_from_the_link_and_joins(alpha, invite, password):
    _, token = invite(alpha, "returning@example.com")
    returning = UserFactory.create(email="returning@example.com")
    browser = Client()

    page = browser.get(_accept_url(token))
    logged_in = browser.post(
        page.context["login_url"], {"login": "returning@example.com", "password": password, "next": _accept_url(token)}
    )
    assert logged_in.status_code == 302
    assert logged_in["Location"] == _accept_url(token)
    accepted = browser.post(_accept_url(token))

    assert accepted.status_code == 302
    assert Membership.objects.filter(workspace=alpha.workspace, user=returning).exists()


# Relies on apps/accounts/adapter.py dropping a stashed address that does not match the sign-up:
# allauth's setup_user_email would otherwise make it the new account's primary, verified email.
def test_signing_up_with_another_address_from_the_link_keeps_that_address(alpha, invite, mailoutbox, password):
    _, token = invite(alpha, "invited@example.com")
    mailoutbox.clear()
    browser = Client()
    browser.get(_accept_url(token))

    signed_up = browser.post(
        reverse("account_signup"),
        {"email": "someone-else@example.com", "password1": password, "password2": password},
    )

    # The invited address was not proven by this visitor; it stays free for its owner, and
    # the new address goes through the normal verification.
    assert signed_up["Location"] == reverse("account_email_verification_sent")
    assert User.objects.filter(email="someone-else@example.com").exists()
    assert not EmailAddress.objects.filter(email="invited@example.com").exists()
    assert [m.to for m in mailoutbox] == [["someone-else@example.com"]]
    assert browser.post(_accept_url(token)).status_code == 200  # not signed in: nothing to accept
    assert Membership.objects.filter(workspace=alpha.workspace).count() == 3

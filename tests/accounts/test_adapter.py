"""The allauth adapters: sign-up side effects run exactly once whichever way a person signs up,
and an address proven by an invitation link is only used for a sign-up with that address."""

from __future__ import annotations

from importlib import import_module

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.forms import SignupForm as SocialSignupForm
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.conf import settings
from django.core import mail
from django.core.handlers.wsgi import WSGIRequest
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.accounts.adapter import SocialAccountAdapter
from apps.accounts.models import User
from apps.workspaces.models import Membership
from apps.workspaces.services import workspace_member_invite
from tests.accounts.helpers import audit_rows, is_authenticated_as
from tests.conftest import Team
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _request_with_session(stashed: str | None = None) -> WSGIRequest:
    request = RequestFactory().post("/accounts/3rdparty/signup/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    if stashed:
        request.session["account_verified_email"] = stashed
    return request


def _sociallogin(email: str) -> SocialLogin:
    return SocialLogin(
        user=User(email=email),
        account=SocialAccount(provider="github", uid="4242", extra_data={"email": email}),
        email_addresses=[EmailAddress(email=email, verified=True, primary=True)],
    )


def test_social_auto_signup_sets_up_one_personal_workspace() -> None:
    request = _request_with_session()

    user = SocialAccountAdapter().save_user(request, _sociallogin("octo@example.com"))

    assert Membership.objects.filter(user=user, workspace__is_personal=True).count() == 1
    [row] = audit_rows("user.signup")
    assert row.metadata == {"method": "github"}
    assert SocialAccount.objects.get(user=user).provider == "github"


def test_social_signup_through_the_form_sets_up_one_personal_workspace() -> None:
    # When the provider gives no usable address, allauth shows its sign-up form, which saves
    # through the account adapter as well as the social one.
    request = _request_with_session()
    sociallogin = _sociallogin("")
    form = SocialSignupForm(data={"email": "typed@example.com"}, sociallogin=sociallogin)
    assert form.is_valid(), form.errors

    user = SocialAccountAdapter().save_user(request, sociallogin, form=form)

    assert user.email == "typed@example.com"
    assert Membership.objects.filter(user=user).count() == 1
    assert [r.metadata for r in audit_rows("user.signup")] == [{"method": "github"}]


def test_social_signup_does_not_take_an_unrelated_invited_address() -> None:
    request = _request_with_session(stashed="invited@example.com")

    user = SocialAccountAdapter().save_user(request, _sociallogin("octo@example.com"))

    user.refresh_from_db()
    assert user.email == "octo@example.com"
    assert not EmailAddress.objects.filter(email="invited@example.com").exists()


def _open_invitation(team: Team, email: str) -> Client:
    _, token = workspace_member_invite(workspace=team.workspace, email=email, role="member", acting_user=team.owner)
    browser = Client()
    assert browser.get(reverse("workspaces:invitation_accept", args=[token])).status_code == 200
    mail.outbox.clear()
    return browser


def test_signup_with_the_invited_address_needs_no_second_verification(alpha: Team) -> None:
    browser = _open_invitation(alpha, "invited@example.com")

    response = browser.post(
        reverse("account_signup"), {"email": "invited@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    user = User.objects.get(email="invited@example.com")
    assert response.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert is_authenticated_as(browser, user)
    assert not mail.outbox


def test_signup_with_another_address_after_opening_an_invitation_keeps_that_address(alpha: Team) -> None:
    browser = _open_invitation(alpha, "invited@example.com")

    browser.post(
        reverse("account_signup"),
        {"email": "someone-else@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    user = User.objects.get(email="someone-else@example.com")
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified", "primary")) == [
        ("someone-else@example.com", False, True)
    ]
    assert not EmailAddress.objects.filter(email="invited@example.com").exists()
    assert not is_authenticated_as(browser, user)
    assert [m.to for m in mail.outbox] == [["someone-else@example.com"]]

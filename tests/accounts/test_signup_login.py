"""Sign-up, email verification and login through the real allauth views."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from allauth.account.models import EmailAddress
from constance.test import override_config
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests.accounts.helpers import audit_rows, is_authenticated_as, link_in_mail, login_post
from tests.factories import PASSWORD, UserFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

NEW_EMAIL = "newcomer@example.com"
NEW_PASSWORD = "plum-orchard-lantern-7"


def signup(client: Client, email: str = NEW_EMAIL, password: str = NEW_PASSWORD) -> TestResponse:
    return client.post("/accounts/signup/", {"email": email, "password1": password, "password2": password})


def test_signup_creates_unverified_user_with_personal_workspace_and_audit_row(client: Client) -> None:
    response = signup(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email=NEW_EMAIL)
    assert user.check_password(NEW_PASSWORD)
    address = EmailAddress.objects.get(user=user)
    assert (address.email, address.verified, address.primary) == (NEW_EMAIL, False, True)
    membership = Membership.objects.select_related("workspace").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.is_personal
    assert membership.workspace.created_by == user
    [row] = audit_rows("user.signup", target_id=str(user.pk))
    assert row.actor == user
    assert row.metadata == {"method": "email"}


def test_signup_sends_a_verification_email_with_a_confirmation_link(client: Client) -> None:
    signup(client)

    assert [m.to for m in mail.outbox] == [[NEW_EMAIL]]
    assert link_in_mail(NEW_EMAIL, "/accounts/confirm-email/")


def test_signup_stores_the_email_in_lower_case(client: Client) -> None:
    signup(client, email="MiXeD@Example.COM")

    assert User.objects.filter(email="mixed@example.com").exists()


def test_signup_with_an_existing_email_creates_no_second_user(client: Client) -> None:
    existing = UserFactory.create(email="taken@example.com")

    response = signup(client, email="Taken@example.com")

    assert response.status_code == 302
    assert list(User.objects.filter(email__iexact="taken@example.com")) == [existing]
    assert not audit_rows("user.signup")
    # allauth tells the owner of the address instead of revealing it to the visitor.
    assert [m.to for m in mail.outbox] == [["taken@example.com"]]


def test_login_before_verifying_is_sent_to_the_verification_page(client: Client) -> None:
    signup(client)
    user = User.objects.get(email=NEW_EMAIL)
    fresh = Client()

    response = login_post(fresh, NEW_EMAIL, NEW_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_authenticated_as(fresh, user)
    assert fresh.get(reverse("accounts:profile")).status_code == 302


def test_confirmation_link_shows_a_page_then_post_verifies_and_logs_in(client: Client) -> None:
    signup(client)
    user = User.objects.get(email=NEW_EMAIL)
    path = link_in_mail(NEW_EMAIL, "/accounts/confirm-email/")

    page = client.get(path)

    assert page.status_code == 200
    assert NEW_EMAIL in page.content.decode()
    assert not EmailAddress.objects.get(user=user).verified  # GET must not confirm

    response = client.post(path)

    assert response.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert is_authenticated_as(client, user)
    assert client.get(reverse("accounts:profile")).status_code == 200
    assert audit_rows("user.login", actor=user)


def test_login_with_email_and_password_after_verification(client: Client) -> None:
    signup(client)
    client.post(link_in_mail(NEW_EMAIL, "/accounts/confirm-email/"))
    user = User.objects.get(email=NEW_EMAIL)
    fresh = Client()

    response = login_post(fresh, NEW_EMAIL, NEW_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert is_authenticated_as(fresh, user)


def test_login_is_case_insensitive_on_the_email(client: Client) -> None:
    user = UserFactory.create(email="casey@example.com")

    response = login_post(client, "CASEY@Example.com", PASSWORD)

    assert response.status_code == 302
    assert is_authenticated_as(client, user)


def test_successful_login_writes_a_login_audit_row(client: Client) -> None:
    user = UserFactory.create()

    login_post(client, user.email, PASSWORD, REMOTE_ADDR="203.0.113.9")

    [row] = audit_rows("user.login", actor=user)
    assert row.target_id == str(user.pk)
    assert row.ip == "203.0.113.9"


def test_wrong_password_shows_an_error_and_writes_login_failed(client: Client) -> None:
    user = UserFactory.create(email="forgetful@example.com")

    response = login_post(client, user.email, "not-the-password")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "not correct" in response.content.decode()
    assert not is_authenticated_as(client, user)
    [row] = audit_rows("user.login_failed")
    assert row.actor is None
    assert row.target_id == str(user.pk)
    assert row.metadata == {"email": "forgetful@example.com"}
    assert not audit_rows("user.login")


def test_failed_login_for_an_unknown_email_is_audited_without_a_target(client: Client) -> None:
    login_post(client, "nobody@example.com", "whatever-password")

    [row] = audit_rows("user.login_failed")
    assert row.target_id == ""
    assert row.metadata == {"email": "nobody@example.com"}


@override_config(SIGNUP_OPEN=False)
def test_signup_page_says_closed_when_signup_is_off(client: Client) -> None:
    response = client.get("/accounts/signup/")

    assert response.status_code == 200
    assert "Sign Up Closed" in response.content.decode()


@override_config(SIGNUP_OPEN=False)
def test_signup_post_creates_nothing_when_signup_is_off(client: Client) -> None:
    signup(client)

    assert not User.objects.filter(email=NEW_EMAIL).exists()
    assert not mail.outbox


@override_config(PASSWORD_MIN_LENGTH=24)
def test_signup_enforces_the_configured_minimum_length(client: Client) -> None:
    response = signup(client, password="short-but-fine-1")

    assert response.status_code == 200
    errors = response.context["form"].errors["password1"]
    assert any("at least 24 characters" in e for e in errors)
    assert not User.objects.filter(email=NEW_EMAIL).exists()


@override_config(PASSWORD_REQUIRE_DIGIT=True)
def test_signup_enforces_a_digit_when_configured(client: Client) -> None:
    response = signup(client, password="plum-orchard-lantern")

    assert "The password must contain a digit." in response.context["form"].errors["password1"]
    assert not User.objects.filter(email=NEW_EMAIL).exists()


@override_config(PASSWORD_REQUIRE_SYMBOL=True)
def test_signup_enforces_a_symbol_when_configured(client: Client) -> None:
    response = signup(client, password="plumorchardlantern7")

    assert "The password must contain a symbol." in response.context["form"].errors["password1"]
    assert not User.objects.filter(email=NEW_EMAIL).exists()


@override_config(PASSWORD_MIN_LENGTH=12, PASSWORD_REQUIRE_DIGIT=True, PASSWORD_REQUIRE_SYMBOL=True)
def test_signup_accepts_a_password_meeting_every_configured_rule(client: Client) -> None:
    response = signup(client, password="plum-orchard-7")

    assert response.status_code == 302
    assert User.objects.filter(email=NEW_EMAIL).exists()


@override_config(PASSWORD_MIN_LENGTH=8, PASSWORD_REQUIRE_DIGIT=False, PASSWORD_REQUIRE_SYMBOL=False)
def test_relaxed_rules_accept_a_password_the_defaults_would_refuse(client: Client) -> None:
    # Nine characters: too short for the default of ten, fine once staff lower the minimum.
    response = signup(client, password="zephyrkoi")

    assert response.status_code == 302
    assert User.objects.filter(email=NEW_EMAIL).exists()

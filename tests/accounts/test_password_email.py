"""Password reset, password change and email change through the allauth views, each leaving
its audit row."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from tests.accounts.helpers import audit_rows, is_authenticated_as, link_in_mail, login_post
from tests.conftest import ClientFor
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "juniper-harbour-kettle-4"


def test_password_reset_by_email_link_replaces_the_password(client: Client) -> None:
    user = UserFactory.create(email="resetme@example.com")

    response = client.post("/accounts/password/reset/", {"email": "resetme@example.com"})
    assert response.status_code == 302
    key_path = link_in_mail("resetme@example.com", "/accounts/password/reset/key/")

    # allauth moves the key into the session and redirects to a key-less URL.
    form_path = client.get(key_path)["Location"]
    assert client.get(form_path).status_code == 200
    response = client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [row] = audit_rows("user.password_reset", target_id=str(user.pk))
    assert row.actor == user

    old = Client()
    assert login_post(old, user.email, PASSWORD).status_code == 200
    assert not is_authenticated_as(old, user)
    new = Client()
    assert login_post(new, user.email, NEW_PASSWORD).status_code == 302
    assert is_authenticated_as(new, user)


def test_password_reset_link_works_only_once(client: Client) -> None:
    user = UserFactory.create(email="once@example.com")
    client.post("/accounts/password/reset/", {"email": user.email})
    key_path = link_in_mail(user.email, "/accounts/password/reset/key/")
    form_path = client.get(key_path)["Location"]
    client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    other = Client()
    other.get(key_path)
    response = other.post(form_path, {"password1": "another-pass-word-99", "password2": "another-pass-word-99"})

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert len(audit_rows("user.password_reset")) == 1


def test_password_reset_for_an_unknown_email_changes_nothing(client: Client) -> None:
    user = UserFactory.create()

    client.post("/accounts/password/reset/", {"email": "stranger@example.com"})

    assert not [m for m in mail.outbox if user.email in m.to]
    assert not audit_rows("user.password_reset")


def test_password_change_when_logged_in_writes_audit_row(client_for: ClientFor) -> None:
    user = UserFactory.create()
    client = client_for(user)

    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [row] = audit_rows("user.password_change", target_id=str(user.pk))
    assert row.actor == user
    # ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE is off: the session that changed it stays signed in.
    assert client.get(reverse("accounts:profile")).status_code == 200


def test_password_change_with_wrong_current_password_is_refused(client_for: ClientFor) -> None:
    user = UserFactory.create()
    client = client_for(user)

    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": "not-my-password", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["oldpassword"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not audit_rows("user.password_change")


def test_password_change_ends_the_users_other_sessions(client_for: ClientFor) -> None:
    user = UserFactory.create()
    elsewhere = client_for(user)
    assert elsewhere.get(reverse("accounts:profile")).status_code == 200
    client = client_for(user)

    client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert elsewhere.get(reverse("accounts:profile")).status_code == 302


def test_email_change_takes_effect_after_verifying_the_new_address(client_for: ClientFor) -> None:
    user = UserFactory.create(email="old@example.com")
    client = client_for(user)

    response = client.post("/accounts/email/", {"email": "New@Example.com", "action_add": ""})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email == "old@example.com"  # nothing changes until the new address is verified
    assert not audit_rows("user.email_change")
    pending = EmailAddress.objects.get(user=user, email="new@example.com")
    assert not pending.verified

    path = link_in_mail("new@example.com", "/accounts/confirm-email/")
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 302

    user.refresh_from_db()
    assert user.email == "new@example.com"
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified", "primary")) == [
        ("new@example.com", True, True)
    ]
    [row] = audit_rows("user.email_change", target_id=str(user.pk))
    assert row.actor == user
    assert row.metadata == {"from": "old@example.com", "to": "new@example.com"}


def test_after_email_change_login_uses_the_new_address(client_for: ClientFor) -> None:
    user = UserFactory.create(email="before@example.com")
    client = client_for(user)
    client.post("/accounts/email/", {"email": "after@example.com", "action_add": ""})
    client.post(link_in_mail("after@example.com", "/accounts/confirm-email/"))

    old = Client()
    login_post(old, "before@example.com", PASSWORD)
    new = Client()
    login_post(new, "after@example.com", PASSWORD)

    assert not is_authenticated_as(old, user)
    assert is_authenticated_as(new, user)


def test_email_change_to_another_users_address_is_not_applied(client_for: ClientFor) -> None:
    owner_of_address = UserFactory.create(email="mine@example.com")
    user = UserFactory.create(email="me@example.com")
    client = client_for(user)

    client.post("/accounts/email/", {"email": "mine@example.com", "action_add": ""})

    user.refresh_from_db()
    assert user.email == "me@example.com"
    assert not EmailAddress.objects.filter(user=user, email="mine@example.com", verified=True).exists()
    assert User.objects.get(pk=owner_of_address.pk).email == "mine@example.com"
    assert not audit_rows("user.email_change")

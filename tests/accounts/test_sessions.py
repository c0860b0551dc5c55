"""Active sessions (allauth usersessions): listing and signing out the other clients."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse

from tests.accounts.helpers import is_authenticated_as, login_post
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 laptop"
PHONE = "Mozilla/5.0 (iPhone) Mobile Safari phone"


def signed_in(email: str, user_agent: str, ip: str) -> Client:
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    assert login_post(client, email, PASSWORD).status_code == 302
    return client


def test_sessions_page_lists_every_session_of_the_user() -> None:
    user = UserFactory.create()
    laptop = signed_in(user.email, LAPTOP, "198.51.100.1")
    signed_in(user.email, PHONE, "198.51.100.2")
    stranger = UserFactory.create()
    signed_in(stranger.email, "Stranger Browser", "198.51.100.3")

    response = laptop.get(reverse("usersessions_list"))

    assert response.status_code == 200
    assert {s.user_agent for s in response.context["sessions"]} == {LAPTOP, PHONE}
    body = response.content.decode()
    assert "198.51.100.2" in body
    assert PHONE in body
    assert "Stranger Browser" not in body
    assert "Sign Out Other Sessions" in body


def test_sign_out_other_sessions_ends_the_other_client_only() -> None:
    user = UserFactory.create()
    laptop = signed_in(user.email, LAPTOP, "198.51.100.1")
    phone = signed_in(user.email, PHONE, "198.51.100.2")
    assert phone.get(reverse("accounts:profile")).status_code == 200

    response = laptop.post(reverse("usersessions_list"))

    assert response.status_code == 302
    assert phone.get(reverse("accounts:profile")).status_code == 302
    assert laptop.get(reverse("accounts:profile")).status_code == 200
    assert is_authenticated_as(laptop, user)
    assert list(UserSession.objects.filter(user=user).values_list("user_agent", flat=True)) == [LAPTOP]


def test_sign_out_other_sessions_leaves_other_users_signed_in() -> None:
    user = UserFactory.create()
    laptop = signed_in(user.email, LAPTOP, "198.51.100.1")
    stranger = UserFactory.create()
    theirs = signed_in(stranger.email, PHONE, "198.51.100.4")

    laptop.post(reverse("usersessions_list"))

    assert theirs.get(reverse("accounts:profile")).status_code == 200


def test_sessions_page_requires_login(client: Client) -> None:
    response = client.get(reverse("usersessions_list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))

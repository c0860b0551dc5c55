"""Sign-in throttling through the real login view with the configured rate limits turned on: per
real client address (a rotating X-Forwarded-For changes nothing), per (account, address) so an
attacker cannot lock the owner out, a high per-account ceiling, and the emailed sign-in code as
the way in while password sign-in is throttled."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from aikeedo.settings.base import ACCOUNT_RATE_LIMITS
from apps.accounts.models import User
from apps.accounts.services import user_suspend
from tests.accounts.helpers import is_authenticated_as, login_post
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
OWNER_HOME = "198.51.100.20"
PROXY = "10.0.0.2"


@pytest.fixture(autouse=True)
def rate_limits(settings: Any) -> dict[str, str]:
    # The test settings turn allauth's rate limits off; these tests need the real ones.
    settings.ACCOUNT_RATE_LIMITS = dict(ACCOUNT_RATE_LIMITS)
    return settings.ACCOUNT_RATE_LIMITS


@pytest.fixture
def owner() -> User:
    return UserFactory.create(email="owner@example.com")


def throttled(response: Any) -> bool:
    form = response.context["form"] if response.context else None
    return response.status_code == 200 and form is not None and form.throttled


def code_in_mail(to: str) -> str:
    messages = [m for m in mail.outbox if to in m.to]
    assert messages, f"no mail sent to {to}"
    lines = [line.strip() for line in messages[-1].body.splitlines()]
    intro = next(i for i, line in enumerate(lines) if "sign-in code is listed below" in line)
    return next(line for line in lines[intro + 1 :] if line)


def sign_in_by_code(client: Client, email: str) -> Any:
    requested = client.post("/accounts/login/code/", {"email": email})
    assert requested.status_code == 302, requested.content
    assert requested["Location"].startswith("/accounts/login/code/confirm/")
    return client.post(requested["Location"], {"code": code_in_mail(email)})


@pytest.mark.parametrize("trusted_proxies", [[], [PROXY]])
def test_rotating_forwarded_for_does_not_escape_the_per_address_limit(
    settings: Any, trusted_proxies: list[str]
) -> None:
    # Without trusted proxies the attacker connects directly; with one, the attacker is behind
    # it and forges entries left of the address the proxy appends. Either way 10 a minute.
    settings.TRUSTED_PROXIES = trusted_proxies
    remote = PROXY if trusted_proxies else ATTACKER
    results = []
    for attempt in range(25):
        forged = f"192.0.2.{attempt + 1}"
        forwarded = f"{forged}, {ATTACKER}" if trusted_proxies else forged
        client = Client(REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
        # A different account each time: only the per-address limit can stop this.
        results.append(throttled(login_post(client, f"victim{attempt}@example.com", "wrong-password")))

    assert results == [False] * 10 + [True] * 15
    # Someone else, behind the same proxy or not, is not throttled with the attacker.
    owner = UserFactory.create()
    if trusted_proxies:
        home = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=OWNER_HOME)
    else:  # nor can the owner be made to look like the attacker
        home = Client(REMOTE_ADDR=OWNER_HOME, HTTP_X_FORWARDED_FOR=ATTACKER)
    assert login_post(home, owner.email, PASSWORD).status_code == 302


def test_attacker_failures_do_not_lock_the_owner_out(owner: User) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(5):
        assert not throttled(login_post(attacker, owner.email, "wrong-password"))
    assert throttled(login_post(attacker, owner.email, "wrong-password"))
    # Even the right password is refused from the attacker's address for now.
    assert throttled(login_post(attacker, owner.email, PASSWORD))
    assert not is_authenticated_as(attacker, owner)

    home = Client(REMOTE_ADDR=OWNER_HOME)
    response = login_post(home, owner.email, PASSWORD)

    assert response.status_code == 302
    assert is_authenticated_as(home, owner)


def test_attacker_behind_a_trusted_proxy_does_not_lock_out_an_owner_behind_it(settings: Any, owner: User) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    for attempt in range(6):
        forged = f"{OWNER_HOME}, {ATTACKER}" if attempt % 2 else ATTACKER
        login_post(Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forged), owner.email, "wrong-password")

    home = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=OWNER_HOME)
    response = login_post(home, owner.email, PASSWORD)

    assert response.status_code == 302
    assert is_authenticated_as(home, owner)


def test_throttled_page_offers_the_emailed_sign_in_code(owner: User) -> None:
    client = Client(REMOTE_ADDR=OWNER_HOME)
    for _ in range(5):
        login_post(client, owner.email, "wrong-password")

    response = login_post(client, owner.email, PASSWORD)

    assert throttled(response)
    [message] = response.context["form"].non_field_errors()
    assert "sign-in code" in message
    body = response.content.decode()
    assert 'data-testid="login-throttled"' in body
    assert "Email me a sign-in code" in body
    assert f'name="email" value="{owner.email}"' in body


def test_owner_signs_in_by_emailed_code_while_password_sign_in_is_throttled(owner: User) -> None:
    client = Client(REMOTE_ADDR=OWNER_HOME)
    for _ in range(6):
        login_post(client, owner.email, "wrong-password")
    assert throttled(login_post(client, owner.email, PASSWORD))

    response = sign_in_by_code(client, owner.email)

    assert response.status_code == 302
    assert is_authenticated_as(client, owner)


def test_many_addresses_hit_the_account_ceiling_and_the_owner_still_gets_in_by_code(
    rate_limits: dict[str, str], owner: User
) -> None:
    rate_limits["login_failed_account"] = "3/h/key"
    for n in range(3):
        login_post(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), owner.email, "wrong-password")

    home = Client(REMOTE_ADDR=OWNER_HOME)
    response = login_post(home, owner.email, PASSWORD)

    assert throttled(response)
    assert "sign-in code" in response.context["form"].non_field_errors()[0]
    assert not is_authenticated_as(home, owner)
    assert sign_in_by_code(home, owner.email).status_code == 302
    assert is_authenticated_as(home, owner)


def test_an_account_refused_by_the_ceiling_does_not_count_against_the_address(
    rate_limits: dict[str, str], owner: User
) -> None:
    rate_limits["login_failed_account"] = "1/h/key"
    login_post(Client(REMOTE_ADDR=ATTACKER), owner.email, "wrong-password")
    other = UserFactory.create(email="other@example.com")
    home = Client(REMOTE_ADDR=OWNER_HOME)
    for _ in range(10):
        assert throttled(login_post(home, owner.email, PASSWORD))

    # Ten refusals from this address were not failures: the address is not throttled (10/m).
    response = login_post(home, other.email, PASSWORD)

    assert response.status_code == 302


def test_successful_sign_ins_do_not_use_up_the_limits(rate_limits: dict[str, str], owner: User) -> None:
    rate_limits["login_failed_account"] = "2/h/key"
    for _ in range(4):
        client = Client(REMOTE_ADDR=OWNER_HOME)
        assert login_post(client, owner.email, PASSWORD).status_code == 302
        assert is_authenticated_as(client, owner)


def test_a_suspended_account_gets_no_sign_in_code(staff: User, owner: User) -> None:
    user_suspend(user=owner, reason="Chargeback fraud", acting_user=staff)
    client = Client(REMOTE_ADDR=OWNER_HOME)

    client.post("/accounts/login/code/", {"email": owner.email})

    # allauth answers as for an unknown address (no enumeration) and sends no code.
    assert not any("sign-in code is listed below" in m.body for m in mail.outbox)
    assert not is_authenticated_as(client, owner)

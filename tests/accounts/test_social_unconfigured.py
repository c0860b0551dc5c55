"""Google and GitHub sign-in URLs when the provider is not configured (no SocialApp row for the
site, no APPS in SOCIALACCOUNT_PROVIDERS): 404, not allauth's SocialApp.DoesNotExist as a 500.
Configured through either source, the same URLs keep working."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.socialaccount.models import SocialApp
from django.contrib.sites.models import Site
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROVIDER_URLS = [
    "/accounts/google/login/",
    "/accounts/google/login/callback/",
    "/accounts/google/login/token/",
    "/accounts/github/login/",
    "/accounts/github/login/callback/",
]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", PROVIDER_URLS)
def test_unconfigured_provider_urls_answer_404(client: Client, url: str, method: str) -> None:
    # The test client re-raises view exceptions, so a DoesNotExist would fail here, not pass.
    response = getattr(client, method)(url, {"state": "x", "code": "y"} if "callback" in url else {})

    assert response.status_code == 404


@pytest.mark.parametrize("url", PROVIDER_URLS)
def test_unconfigured_provider_urls_answer_404_to_a_signed_in_user(url: str) -> None:
    client = Client()
    client.force_login(UserFactory.create())

    assert client.get(url).status_code == 404


def test_app_for_another_site_does_not_count_as_configured(client: Client) -> None:
    # An explicit pk: the default site was inserted with id 1, so PostgreSQL's sequence is still at 1.
    other = Site.objects.create(pk=99, domain="other.example.com", name="Other")
    app = SocialApp.objects.create(provider="google", name="Google", client_id="cid", secret="s")
    app.sites.add(other)

    assert client.get("/accounts/google/login/").status_code == 404


def test_login_page_offers_no_unconfigured_provider(client: Client) -> None:
    body = client.get("/accounts/login/").content.decode()

    assert "/accounts/google/login/" not in body
    assert "/accounts/github/login/" not in body


def test_provider_configured_in_the_database_still_starts_sign_in(client: Client) -> None:
    app = SocialApp.objects.create(provider="google", name="Google", client_id="google-client-id", secret="s")
    app.sites.add(Site.objects.get_current())

    assert "/accounts/google/login/" in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/google/login/").status_code == 200  # the "continue" page
    response = client.post("/accounts/google/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://accounts.google.com/")
    assert "google-client-id" in response["Location"]
    assert client.get("/accounts/github/login/").status_code == 404


def test_provider_configured_in_settings_still_starts_sign_in(client: Client, settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {"APPS": [{"client_id": "github-client-id", "secret": "s"}]}}

    assert "/accounts/github/login/" in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/github/login/").status_code == 200
    response = client.post("/accounts/github/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://github.com/login/oauth/authorize")
    assert "github-client-id" in response["Location"]
    assert client.get("/accounts/google/login/").status_code == 404


def test_callback_of_a_configured_provider_without_state_is_not_a_server_error(client: Client, settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {"APPS": [{"client_id": "github-client-id", "secret": "s"}]}}

    response = client.get("/accounts/github/login/callback/", {"code": "x", "state": "forged"})

    assert response.status_code < 500

"""Absolute links for emails (`apps.core.sites`): SITE_URL when it is set, else the address of the
request or socket that caused the email (carried into tasks), else the Sites framework's domain;
and production always has a SITE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sites.models import Site
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from pytest_django import Settings

from apps.core.realtime import RevocableConsumer
from apps.core.sites import (
    SiteURLMiddleware,
    absolute_url,
    base_url_scope,
    current_base_url,
    scope_base_url,
    site_base_url,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_site_url(settings: Settings) -> None:
    settings.SITE_URL = ""


def _seen_through_middleware(request: HttpRequest) -> str:
    seen: dict[str, str] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["base"] = current_base_url()
        seen["link"] = absolute_url("/credits/") if seen["base"] else ""
        return HttpResponse("ok")

    SiteURLMiddleware(view)(request)
    return seen["link"]


def test_links_follow_the_request_that_caused_them(settings: Settings) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8031")

    assert _seen_through_middleware(request) == "http://127.0.0.1:8031/credits/"
    assert current_base_url() == ""  # nothing outlives the request


def test_a_secure_request_gives_https_links(settings: Settings) -> None:
    settings.ALLOWED_HOSTS = ["app.example.com"]
    request = RequestFactory().get("/", HTTP_HOST="app.example.com", secure=True)

    assert _seen_through_middleware(request) == "https://app.example.com/credits/"


def test_a_host_the_site_does_not_serve_is_never_used(settings: Settings) -> None:
    settings.ALLOWED_HOSTS = ["app.example.com"]
    request = RequestFactory().get("/", HTTP_HOST="evil.example")

    assert _seen_through_middleware(request) == ""


def test_site_url_when_set_wins_over_the_request_and_the_base_given(settings: Settings) -> None:
    settings.SITE_URL = "https://aikeedo.example.com/"

    with base_url_scope("http://127.0.0.1:8031"):
        assert absolute_url("/credits/") == "https://aikeedo.example.com/credits/"
        assert absolute_url("/credits/", base="http://localhost:9000") == "https://aikeedo.example.com/credits/"


def test_the_base_given_by_a_task_wins_over_the_current_request() -> None:
    with base_url_scope("http://127.0.0.1:8031/"):
        assert site_base_url() == "http://127.0.0.1:8031"
        assert absolute_url("/billing/", base="http://localhost:9000") == "http://localhost:9000/billing/"
        assert absolute_url("billing/") == "http://127.0.0.1:8031/billing/"


@pytest.mark.django_db
def test_without_a_request_the_sites_framework_domain_is_used(settings: Settings) -> None:
    Site.objects.clear_cache()
    Site.objects.filter(pk=django_settings.SITE_ID).update(domain="staff-set.example:8443")
    settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
    try:
        assert absolute_url("/credits/") == "https://staff-set.example:8443/credits/"
    finally:
        Site.objects.clear_cache()


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("ws", b"127.0.0.1:8031", "http://127.0.0.1:8031"),
        ("wss", b"app.example.com", "https://app.example.com"),
        ("ws", b"evil.example", ""),
        ("ws", b"", ""),
    ],
)
def test_a_sockets_base_comes_from_its_host_when_the_site_serves_it(
    settings: Settings, scheme: str, host: bytes, expected: str
) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "app.example.com"]
    scope = {"type": "websocket", "scheme": scheme, "headers": [(b"host", host)] if host else []}

    assert scope_base_url(scope) == expected


class _EchoBase(RevocableConsumer):
    """Answers each frame with the links a charge made by it would carry."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"base": current_base_url(), "link": absolute_url("/credits/")})


# A socket's database steps run in threads of their own (channels closes their stale connections).
@pytest.mark.django_db(transaction=True)
def test_work_done_for_a_socket_links_to_the_address_it_was_opened_at(settings: Settings) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1"]

    async def scenario() -> None:
        communicator = WebsocketCommunicator(_EchoBase.as_asgi(), "/ws/x/", headers=[(b"host", b"127.0.0.1:8031")])
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from() == {
            "base": "http://127.0.0.1:8031",
            "link": "http://127.0.0.1:8031/credits/",
        }
        await communicator.disconnect()

    async_to_sync(scenario)()


# ---------------------------------------------------------------------------- settings


def _production_setting(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the production settings in a fresh interpreter with `env`; prints SITE_URL."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SITE_URL", "DJANGO_ALLOWED_HOSTS"}}
    clean.update(DJANGO_SECRET_KEY="x" * 64, **env)
    return subprocess.run(
        [sys.executable, "-c", "import aikeedo.settings.production as s; print(s.SITE_URL)"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_uses_site_url_when_set() -> None:
    result = _production_setting(DJANGO_ALLOWED_HOSTS="aikeedo.example.com", SITE_URL="https://app.example.com/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://app.example.com"


def test_production_without_site_url_links_to_its_first_host_on_https() -> None:
    result = _production_setting(DJANGO_ALLOWED_HOSTS=".example.com,aikeedo.example.com")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://aikeedo.example.com"


def test_production_refuses_to_start_without_an_address_for_its_links() -> None:
    result = _production_setting(DJANGO_ALLOWED_HOSTS="*")

    assert result.returncode != 0
    assert "Set SITE_URL" in result.stderr


def test_a_site_url_that_is_not_a_web_address_is_refused() -> None:
    result = _production_setting(DJANGO_ALLOWED_HOSTS="aikeedo.example.com", SITE_URL="aikeedo.example.com")

    assert result.returncode != 0
    assert "SITE_URL must start with http:// or https://" in result.stderr


def test_development_leaves_site_url_empty_by_default() -> None:
    clean = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "import aikeedo.settings.local as s; print(repr(s.SITE_URL))"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "''"

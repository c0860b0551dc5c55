"""Error pages and branding as a visitor sees them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from constance.test import override_config
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from pytest_django import Settings

from apps.core import views

pytestmark = pytest.mark.django_db

EXPLODING_PROCESSOR = "tests.core.test_pages.exploding_context_processor"


def exploding_context_processor(request: HttpRequest) -> dict[str, Any]:
    raise RuntimeError("a broken context processor")


def _title(response: HttpResponse) -> str:
    match = re.search(r"<title>\s*(.*?)\s*</title>", response.content.decode(), re.S)
    assert match, "page has no <title>"
    return match.group(1)


@pytest.fixture
def broken_context_processor(settings: Settings) -> None:
    templates = [dict(engine, OPTIONS=dict(engine["OPTIONS"])) for engine in settings.TEMPLATES]
    templates[0]["OPTIONS"]["context_processors"] = [
        *templates[0]["OPTIONS"]["context_processors"],
        EXPLODING_PROCESSOR,
    ]
    settings.TEMPLATES = templates


def test_unknown_url_renders_the_branded_404_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "errors/404.html" in [t.name for t in response.templates]
    assert _title(response) == "Not found · Aikeedo"
    assert b"Page not found" in response.content


def test_404_page_for_a_signed_in_user_renders_their_menu(client_for, alpha):
    response = client_for(alpha.member, alpha.workspace).get("/no-such-page/")

    assert response.status_code == 404
    assert b'data-testid="account-menu"' in response.content


def test_server_error_page_renders_without_the_request_context(broken_context_processor):
    request = RequestFactory().get("/")

    response = views.server_error(request)

    assert response.status_code == 500
    assert b"Something went wrong" in response.content


def test_broken_context_processor_does_break_context_rendered_pages(broken_context_processor):
    # The counterpart of the test above: the fixture really breaks request-context rendering.
    with pytest.raises(RuntimeError, match="broken context processor"):
        views.page_not_found(RequestFactory().get("/"))


def test_permission_denied_renders_the_branded_403_page(rf):
    from django.contrib.auth.models import AnonymousUser

    request = rf.get("/")
    request.user = AnonymousUser()

    response = views.permission_denied(request)

    assert response.status_code == 403
    assert b"Not allowed" in response.content


def test_site_name_from_runtime_config_shows_in_title_and_header(client):
    with override_config(SITE_NAME="Acme Copilot"):
        response = client.get("/")

    assert response.status_code == 200
    assert _title(response) == "Acme Copilot"
    assert re.search(rb'class="brand">\s*<strong>Acme Copilot</strong>', response.content)
    assert b"Aikeedo" not in response.content


def test_default_site_name_is_used_without_an_override(client):
    response = client.get("/")

    assert _title(response) == "Aikeedo"


def test_logo_replaces_the_site_name_text_in_the_header(client):
    with override_config(SITE_NAME="Acme", SITE_LOGO_URL="https://cdn.example/logo.svg"):
        response = client.get("/")

    assert re.search(rb'<img src="https://cdn.example/logo.svg"\s+alt="Acme"', response.content)


@pytest.mark.outsider("dashboard")
@pytest.mark.parametrize("who", ["anonymous", "outsider", "beta_member"])
def test_dashboard_shows_nothing_of_a_workspace_the_visitor_is_not_in(client, client_for, alpha, beta, outsider, who):
    from django.urls import reverse

    alpha.workspace.name = "Alpha Secret Lab"
    alpha.workspace.save(update_fields=["name"])
    if who == "anonymous":
        visitor = client
    else:  # asks for Alpha; not a member of it
        visitor = client_for(beta.member if who == "beta_member" else outsider, alpha.workspace)

    response = visitor.get(reverse("dashboard"))

    if who == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
        return
    assert response.status_code == 200
    assert response.context["current_workspace"] == (beta.workspace if who == "beta_member" else None)
    html = response.content.decode()
    assert "Alpha Secret Lab" not in html
    assert f'value="{alpha.workspace.pk}"' not in html
    assert alpha.owner.email not in html

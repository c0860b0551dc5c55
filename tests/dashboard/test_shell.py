"""The layout every page shares: the signed-in sidebar and top bar, the anonymous top bar,
toasts for messages, the favicon."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.chat.models import Conversation
from tests.conftest import ClientFor, Team
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SIDEBAR_LINKS = [
    "dashboard",
    "chat:list",
    "media:images",
    "media:speech",
    "media:transcribe",
    "media:voices",
    "media:gallery",
    "workspaces:members",
    "apikeys:list",
    "billing:overview",
    "credits:overview",
    "workspaces:settings",
    "workspaces:list",
]


def test_signed_in_pages_have_the_sidebar_with_every_section(client_for: ClientFor, alpha: Team) -> None:
    html = client_for(alpha.member, alpha.workspace).get(reverse("dashboard")).content.decode()

    assert 'data-testid="sidebar"' in html
    for name in SIDEBAR_LINKS:
        assert f'href="{reverse(name)}"' in html, name
    assert 'data-testid="workspace-switcher"' in html
    assert 'data-testid="new-chat-button"' in html
    assert 'data-testid="balance-widget"' in html
    assert f'hx-get="{reverse("chat:sidebar")}"' in html
    assert 'data-testid="account-menu"' in html
    assert 'aria-controls="app-sidebar"' in html


def test_the_current_page_is_marked_in_the_sidebar(client_for: ClientFor, alpha: Team) -> None:
    html = client_for(alpha.member, alpha.workspace).get(reverse("media:speech")).content.decode()

    assert re.search(rf'href="{reverse("media:speech")}"\s+aria-current="page"', html)
    assert not re.search(rf'href="{reverse("media:images")}"\s+aria-current="page"', html)
    assert html.count('aria-current="page"') == 1


def test_the_open_conversation_is_marked_in_the_history(client_for: ClientFor, alpha: Team) -> None:
    shown = Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, title="Open one")
    Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, title="Other one")

    html = client_for(alpha.member, alpha.workspace).get(reverse("chat:detail", args=[shown.pk])).content.decode()

    url = reverse("chat:detail", args=[shown.pk])
    assert re.search(rf'href="{url}"\s+class="conversation-link"\s+title="Open one"\s+aria-current="page"', html)
    assert re.search(rf'name="current"\s+value="{shown.pk}"', html)


def test_account_menu_has_the_account_links_and_a_logout_form(client_for: ClientFor, alpha: Team) -> None:
    html = client_for(alpha.member, alpha.workspace).get(reverse("dashboard")).content.decode()

    menu = html[html.index('data-testid="account-menu"') :]
    for name in (
        "accounts:profile",
        "account_email",
        "account_change_password",
        "usersessions_list",
        "socialaccount_connections",
        "accounts:privacy",
    ):
        assert f'href="{reverse(name)}"' in menu, name
    assert re.search(rf'<form method="post" action="{reverse("account_logout")}">', menu)
    assert f'href="{reverse("admin:index")}"' not in html


def test_staff_see_the_admin_link(client_for: ClientFor, alpha: Team) -> None:
    alpha.owner.is_staff = True
    alpha.owner.save(update_fields=["is_staff"])

    html = client_for(alpha.owner, alpha.workspace).get(reverse("dashboard")).content.decode()

    assert f'href="{reverse("admin:index")}"' in html


def test_anonymous_pages_have_the_simple_top_bar(client: Client) -> None:
    html = client.get(reverse("home")).content.decode()

    assert 'data-testid="sidebar"' not in html
    assert 'class="public-header"' in html
    for name in ("billing:pricing", "account_login", "account_signup"):
        assert f'href="{reverse(name)}"' in html
    assert "data-theme-toggle" in html


def test_messages_show_as_dismissable_status_toasts(client_for: ClientFor, alpha: Team) -> None:
    client = client_for(alpha.owner, alpha.workspace)
    # A real flow that leaves a message: renaming the workspace.
    response = client.post(reverse("workspaces:settings"), {"name": "Alpha Renamed"}, follow=True)

    html = response.content.decode()
    toasts = html[html.index('class="toasts" role="status"') :]
    assert re.search(r'<div class="toast toast-success" data-toast>\s*<p>Workspace renamed\.</p>', toasts)
    assert "data-toast-close" in toasts
    assert 'aria-label="Dismiss this message"' in toasts


def test_every_page_links_the_svg_favicon(client: Client, client_for: ClientFor) -> None:
    user = UserFactory.create()
    for visitor in (client, client_for(user)):
        html = visitor.get(reverse("home"), follow=True).content.decode()
        assert re.search(r'<link rel="icon" href="/static/favicon\.svg" type="image/svg\+xml">', html)


@pytest.mark.outsider("favicon")
def test_favicon_ico_redirects_anyone_to_the_static_icon(client: Client) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
    assert "max-age=86400" in response["Cache-Control"]

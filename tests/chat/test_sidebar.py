"""The sidebar's conversation history: sections by day in the user's time zone, pinned first,
search through the `chat:sidebar` fragment, one bounded query, and tenant isolation."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.chat.models import Conversation, Message
from apps.chat.selectors import sidebar_conversations, sidebar_groups
from apps.workspaces.models import Workspace
from tests.conftest import ClientFor, Team

pytestmark = pytest.mark.django_db

SIDEBAR = reverse("chat:sidebar")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _conversation(workspace: Workspace, title: str, updated_at: datetime | None = None, **kwargs: Any) -> Conversation:
    conversation = Conversation.objects.create(workspace=workspace, title=title, **kwargs)
    if updated_at is not None:
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=updated_at)
        conversation.updated_at = updated_at
    return conversation


def _labels(groups: list[Any]) -> dict[str, list[str]]:
    return {group.label: [c.title for c in group.conversations] for group in groups}


# ---------------------------------------------------------------------------- grouping


def test_groups_by_day_in_the_users_time_zone(alpha: Team) -> None:
    # 23:30 in Berlin on 10 March is 22:30 UTC; 00:30 on 10 March in Berlin is still 9 March in UTC.
    now = datetime(2026, 3, 10, 23, 45, tzinfo=BERLIN)
    _conversation(alpha.workspace, "Late tonight", datetime(2026, 3, 10, 23, 30, tzinfo=BERLIN))
    _conversation(alpha.workspace, "Just after midnight", datetime(2026, 3, 10, 0, 30, tzinfo=BERLIN))
    _conversation(alpha.workspace, "Yesterday evening", datetime(2026, 3, 9, 21, 0, tzinfo=BERLIN))
    _conversation(alpha.workspace, "Last week", datetime(2026, 3, 4, 12, 0, tzinfo=BERLIN))
    _conversation(alpha.workspace, "Long ago", datetime(2026, 2, 1, 12, 0, tzinfo=BERLIN))

    with timezone.override(BERLIN):
        groups = sidebar_groups(sidebar_conversations(workspace=alpha.workspace), today=now.date())

    assert _labels(groups) == {
        "Today": ["Late tonight", "Just after midnight"],
        "Yesterday": ["Yesterday evening"],
        "Previous 7 days": ["Last week"],
        "Older": ["Long ago"],
    }
    # The same moments seen from UTC put "Just after midnight" on the day before.
    with timezone.override(zoneinfo.ZoneInfo("UTC")):
        utc = _labels(sidebar_groups(sidebar_conversations(workspace=alpha.workspace), today=date(2026, 3, 10)))
    assert "Just after midnight" in utc["Yesterday"]


def test_grouping_follows_the_signed_in_users_time_zone_setting(client_for: ClientFor, alpha: Team) -> None:
    auckland, utc = zoneinfo.ZoneInfo("Pacific/Auckland"), zoneinfo.ZoneInfo("UTC")
    alpha.member.timezone = "Pacific/Auckland"
    alpha.member.save(update_fields=["timezone"])
    now = timezone.now()

    def label(moment: datetime, zone: zoneinfo.ZoneInfo) -> str:
        return {0: "Today", 1: "Yesterday"}[(now.astimezone(zone).date() - moment.astimezone(zone).date()).days]

    # Auckland's midnight and UTC's are 11 to 13 hours apart: within the last day there is a
    # moment that is "Today" in one and "Yesterday" in the other.
    moment = next(
        candidate
        for candidate in (now - timedelta(minutes=30 * i) for i in range(1, 48))
        if label(candidate, auckland) != label(candidate, utc)
    )
    _conversation(alpha.workspace, "Around midnight", moment)

    response = client_for(alpha.member, alpha.workspace).get(SIDEBAR)

    assert _labels(response.context["sidebar_groups"]) == {label(moment, auckland): ["Around midnight"]}


def test_pinned_conversations_come_first_most_recently_pinned_on_top(alpha: Team) -> None:
    now = timezone.now()
    _conversation(alpha.workspace, "Fresh", now)
    _conversation(alpha.workspace, "Pinned long ago", now - timedelta(days=40), pinned_at=now - timedelta(days=2))
    _conversation(alpha.workspace, "Pinned recently", now - timedelta(days=90), pinned_at=now - timedelta(hours=1))

    groups = sidebar_groups(sidebar_conversations(workspace=alpha.workspace))

    assert [g.label for g in groups] == ["Pinned", "Today"]
    assert _labels(groups)["Pinned"] == ["Pinned recently", "Pinned long ago"]


def test_the_list_is_bounded_and_read_in_one_query(alpha: Team, django_assert_num_queries: Any) -> None:
    for i in range(12):
        _conversation(alpha.workspace, f"Chat {i}")

    with django_assert_num_queries(1):
        conversations = sidebar_conversations(workspace=alpha.workspace, limit=10)
        groups = sidebar_groups(conversations)

    assert len(conversations) == 10
    assert sum(len(g.conversations) for g in groups) == 10


# ---------------------------------------------------------------------------- search fragment


def test_search_matches_titles_and_message_text(client_for: ClientFor, alpha: Team) -> None:
    _conversation(alpha.workspace, "Holiday plans")
    by_message = _conversation(alpha.workspace, "Untitled idea")
    Message.objects.create(
        workspace=alpha.workspace, conversation=by_message, role=Message.Role.USER, content="A HOLIDAY in Rome?"
    )
    _conversation(alpha.workspace, "Budget review")
    client = client_for(alpha.member, alpha.workspace)

    response = client.get(SIDEBAR, {"q": "holiday"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Holiday plans" in html
    assert "Untitled idea" in html
    assert "Budget review" not in html
    assert "<html" not in html  # a fragment, not a page


def test_search_without_a_match_says_so(client_for: ClientFor, alpha: Team) -> None:
    _conversation(alpha.workspace, "Holiday plans")

    html = client_for(alpha.member, alpha.workspace).get(SIDEBAR, {"q": "zebra"}).content.decode()

    assert 'data-testid="sidebar-empty"' in html
    assert "No conversation matches “zebra”." in html


def test_fragment_offers_pin_and_unpin_and_marks_the_current_conversation(client_for: ClientFor, alpha: Team) -> None:
    pinned = _conversation(alpha.workspace, "Keep me", pinned_at=timezone.now())
    loose = _conversation(alpha.workspace, "Loose")

    html = client_for(alpha.member, alpha.workspace).get(SIDEBAR, {"current": str(loose.pk)}).content.decode()

    assert f'hx-post="{reverse("chat:pin", args=[pinned.pk])}"' in html
    pinned_item = html[html.index(reverse("chat:pin", args=[pinned.pk])) :]
    assert re.search(r'name="pinned"\s+value="0"', pinned_item[: pinned_item.index("</form>")])
    loose_item = html[html.index(reverse("chat:pin", args=[loose.pk])) :]
    assert re.search(r'name="pinned"\s+value="1"', loose_item[: loose_item.index("</form>")])
    assert html.count('aria-current="page"') == 1
    assert 'aria-label="Unpin “Keep me”"' in html


def test_pinning_from_the_sidebar_moves_the_conversation_to_pinned(client_for: ClientFor, alpha: Team) -> None:
    conversation = _conversation(alpha.workspace, "Pin me", timezone.now() - timedelta(days=20))
    client = client_for(alpha.member, alpha.workspace)

    response = client.post(reverse("chat:pin", args=[conversation.pk]), {"pinned": "1"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 204
    assert _labels(client.get(SIDEBAR).context["sidebar_groups"]) == {"Pinned": ["Pin me"]}


def test_every_signed_in_page_draws_the_history(client_for: ClientFor, alpha: Team) -> None:
    _conversation(alpha.workspace, "Shown everywhere")

    html = client_for(alpha.member, alpha.workspace).get(reverse("credits:overview")).content.decode()

    assert 'data-testid="sidebar-conversations"' in html
    assert "Shown everywhere" in html


# ---------------------------------------------------------------------------- isolation


@pytest.mark.outsider("chat:sidebar")
def test_another_workspace_sees_none_of_alphas_conversations(client_for: ClientFor, alpha: Team, beta: Team) -> None:
    _conversation(alpha.workspace, "Alpha secret roadmap")
    _conversation(beta.workspace, "Beta notes")

    response = client_for(beta.member, beta.workspace).get(SIDEBAR, {"q": "roadmap"})
    assert response.status_code == 200
    assert "Alpha secret roadmap" not in response.content.decode()

    everything = client_for(beta.member, beta.workspace).get(SIDEBAR).content.decode()
    assert "Alpha secret roadmap" not in everything
    assert "Beta notes" in everything
    page = client_for(beta.member, beta.workspace).get(reverse("dashboard")).content.decode()
    assert "Alpha secret roadmap" not in page


@pytest.mark.outsider("chat:sidebar")
def test_anonymous_and_workspaceless_visitors_get_no_list(
    client: Client, client_for: ClientFor, alpha: Team, outsider: User
) -> None:
    _conversation(alpha.workspace, "Alpha secret roadmap")

    anonymous = client.get(SIDEBAR)
    assert anonymous.status_code == 302
    assert reverse("account_login") in anonymous["Location"]

    nobody = client_for(outsider, alpha.workspace).get(SIDEBAR)
    assert nobody.status_code == 302  # no workspace of their own: sent to create one
    assert "Alpha secret roadmap" not in nobody.content.decode()

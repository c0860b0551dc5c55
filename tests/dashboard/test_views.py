"""The dashboard: a new workspace's first steps, a used workspace's recent work, credits with
30 days of usage, the plan, the bound on its queries, and who may see it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.apikeys.models import ApiKey
from apps.chat.models import Conversation, Message
from apps.credits.models import Reservation, Service, Source
from apps.credits.services import credits_grant, credits_reserve, credits_settle
from apps.media.models import GenerationJob, JobKind, JobStatus
from apps.workspaces.models import Workspace
from apps.workspaces.roles import Role
from tests.conftest import ClientFor, Team
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")


@pytest.fixture
def newcomer() -> tuple[User, Workspace]:
    """Someone who just signed up: the only member of a fresh workspace."""
    user = UserFactory.create(display_name="Nora")
    workspace = WorkspaceFactory.create(name="Nora's lab")
    MembershipFactory.create(workspace=workspace, user=user, role=Role.OWNER)
    return user, workspace


def _chat(workspace: Workspace, user: User, title: str) -> Conversation:
    conversation = Conversation.objects.create(workspace=workspace, user=user, title=title)
    Message.objects.create(workspace=workspace, conversation=conversation, role=Message.Role.USER, content="Hi")
    return conversation


def _job(workspace: Workspace, prompt: str, key: str, **kwargs: Any) -> GenerationJob:
    fields: dict[str, Any] = {
        "kind": JobKind.IMAGE,
        "model_label": "Mock image",
        "status": JobStatus.SUCCEEDED,
        "parameters": {"prompt": prompt},
        **kwargs,
    }
    return GenerationJob.objects.create(workspace=workspace, idempotency_key=key, **fields)


def _spend(workspace: Workspace, credits: int, key: str, days_ago: int = 0) -> None:
    reservation = credits_reserve(workspace=workspace, amount=credits, idempotency_key=key, service=Service.TEXT)
    credits_settle(reservation=reservation, actual=credits)
    Reservation.objects.filter(pk=reservation.pk).update(created_at=timezone.now() - timedelta(days=days_ago))


def _checklist(html: str, key: str) -> str:
    marker = f'data-testid="checklist-{key}"'
    assert marker in html, f"no checklist item {key}"
    start = html.index(marker)
    return html[start : html.index("</li>", start)]


@pytest.mark.outsider("dashboard")
def test_anonymous_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_new_workspace_sees_quick_starts_and_an_open_checklist(client_for: ClientFor, newcomer) -> None:
    user, workspace = newcomer

    response = client_for(user, workspace).get(DASHBOARD)

    assert response.status_code == 200
    assert "dashboard/dashboard.html" in [t.name for t in response.templates]
    html = response.content.decode()
    for name in ("chat:list", "media:images", "media:speech", "media:transcribe", "media:voices"):
        assert f'href="{reverse(name)}" class="tile"' in html
    assert 'data-testid="onboarding"' in html
    assert "0 of 3 done" in html
    for key in ("chat", "invite", "apikey"):
        assert 'data-done="false"' in _checklist(html, key)
    assert "No conversations yet." in html
    assert "Nothing made in the studio yet." in html
    assert "No credits used in the last 30 days." in html
    assert f'href="{reverse("billing:pricing")}"' in html


def test_checklist_ticks_each_step_from_what_the_workspace_has(client_for: ClientFor, newcomer) -> None:
    user, workspace = newcomer
    client = client_for(user, workspace)
    _chat(workspace, user, "First steps")

    html = client.get(DASHBOARD).content.decode()

    assert 'data-done="true"' in _checklist(html, "chat")
    assert 'data-done="false"' in _checklist(html, "invite")
    assert "1 of 3 done" in html

    ApiKey.objects.create(workspace=workspace, name="CI", prefix="ak_dash01", key_hash="a" * 64, created_by=user)
    html = client.get(DASHBOARD).content.decode()
    assert 'data-done="true"' in _checklist(html, "apikey")
    assert "2 of 3 done" in html


def test_a_conversation_without_a_message_sent_does_not_tick_the_first_chat(client_for: ClientFor, newcomer) -> None:
    user, workspace = newcomer
    Conversation.objects.create(workspace=workspace, user=user, title="Empty")

    html = client_for(user, workspace).get(DASHBOARD).content.decode()

    assert 'data-done="false"' in _checklist(html, "chat")


def test_checklist_disappears_once_every_step_is_done(client_for: ClientFor, alpha: Team) -> None:
    # Alpha already has teammates; a chat and a key complete the list.
    _chat(alpha.workspace, alpha.owner, "Launch plan")
    ApiKey.objects.create(workspace=alpha.workspace, name="CI", prefix="ak_dash02", key_hash="b" * 64)

    html = client_for(alpha.owner, alpha.workspace).get(DASHBOARD).content.decode()

    assert 'data-testid="onboarding"' not in html


def test_a_member_is_told_an_admin_invites_teammates(client_for: ClientFor, newcomer) -> None:
    _owner, workspace = newcomer
    member = UserFactory.create()
    MembershipFactory.create(workspace=workspace, user=member, role=Role.MEMBER)

    html = client_for(member, workspace).get(DASHBOARD).content.decode()

    # The owner counts as the member's teammate; creating a key needs an admin.
    assert 'data-done="true"' in _checklist(html, "invite")
    assert "An admin of this workspace can do this." in _checklist(html, "apikey")


def test_used_workspace_shows_recent_conversations_and_studio_jobs(client_for: ClientFor, alpha: Team, beta) -> None:
    old = _chat(alpha.workspace, alpha.member, "Quarterly report")
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=3))
    recent = _chat(alpha.workspace, alpha.member, "Release notes")
    job = _job(alpha.workspace, "A red fox in the snow", "dash-job-1")
    speech = _job(alpha.workspace, "Welcome aboard", "dash-job-2", kind=JobKind.SPEECH, status=JobStatus.FAILED)
    _chat(beta.workspace, beta.member, "Beta's secret plan")
    _job(beta.workspace, "Beta's secret picture", "dash-job-3")

    html = client_for(alpha.member, alpha.workspace).get(DASHBOARD).content.decode()

    recent_block = html[html.index('data-testid="recent-conversations"') :]
    assert recent_block.index("Release notes") < recent_block.index("Quarterly report")
    assert f'href="{reverse("chat:detail", args=[recent.pk])}"' in html
    assert f'href="{reverse("media:images")}?job={job.pk}"' in html
    assert f'href="{reverse("media:speech")}?job={speech.pk}"' in html
    assert "A red fox in the snow" in html
    assert "badge-failed" in html
    assert "secret plan" not in html
    assert "secret picture" not in html


def test_recent_lists_are_capped(client_for: ClientFor, alpha: Team) -> None:
    for i in range(8):
        _chat(alpha.workspace, alpha.member, f"Chat number {i}")
        _job(alpha.workspace, f"Picture number {i}", f"dash-cap-{i}")

    response = client_for(alpha.member, alpha.workspace).get(DASHBOARD)

    assert len(response.context["recent_conversations"]) == 5
    assert len(response.context["recent_jobs"]) == 5


def test_credits_card_shows_the_balance_and_a_30_day_sparkline(client_for: ClientFor, alpha: Team) -> None:
    credits_grant(workspace=alpha.workspace, amount=100, source=Source.PURCHASED, idempotency_key="dash-grant")
    _spend(alpha.workspace, 5, "dash-spend-today")
    _spend(alpha.workspace, 10, "dash-spend-week", days_ago=6)
    _spend(alpha.workspace, 7, "dash-spend-old", days_ago=45)  # before the window

    response = client_for(alpha.member, alpha.workspace).get(DASHBOARD)

    usage = response.context["usage"]
    assert len(usage.values) == 30
    assert usage.values[-1] == 5 * 10_000
    assert usage.values[-7] == 10 * 10_000
    assert usage.total_units == 15 * 10_000
    html = response.content.decode()
    assert "78 <small>credits available</small>" in html  # 100 granted - 22 spent
    assert 'data-testid="usage-sparkline"' in html
    assert f'points="{usage.points}"' in html
    assert "15 credits used in the last 30 days, on 2 days." in html


def test_plan_card_links_to_pricing(client_for: ClientFor, alpha: Team) -> None:
    html = client_for(alpha.member, alpha.workspace).get(DASHBOARD).content.decode()

    plan = html[html.index('data-testid="dashboard-plan"') :]
    assert f'href="{reverse("billing:pricing")}"' in plan
    assert 'data-testid="upgrade-link"' in plan


def test_dashboard_queries_do_not_grow_with_the_workspace(
    client_for: ClientFor, alpha: Team, django_assert_max_num_queries: Any
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    credits_grant(workspace=alpha.workspace, amount=1000, source=Source.PURCHASED, idempotency_key="dash-q")
    _chat(alpha.workspace, alpha.member, "Seed")
    client.get(DASHBOARD)
    with django_assert_max_num_queries(30) as few:
        assert client.get(DASHBOARD).status_code == 200

    for i in range(15):
        _chat(alpha.workspace, alpha.member, f"More {i}")
        _job(alpha.workspace, f"More {i}", f"dash-more-{i}")
        _spend(alpha.workspace, 1, f"dash-more-spend-{i}", days_ago=i)

    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(DASHBOARD).status_code == 200


def test_a_user_without_a_workspace_is_invited_to_create_one(client_for: ClientFor, outsider: User) -> None:
    response = client_for(outsider).get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    assert "No workspace yet" in html
    assert f'href="{reverse("workspaces:create")}"' in html
    assert 'data-testid="onboarding"' not in html

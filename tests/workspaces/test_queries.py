"""List pages run a fixed number of queries, however many rows they show."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.workspaces.models import Invitation
from apps.workspaces.roles import Role
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

# session 1, user 1, allauth user-session tracking 5 (with savepoints), constance branding 5
# (0 when its cache backend is set), current membership 1, switcher 1, the page's lists 1-2.
MAX_QUERIES = 16


def _fill_members(team, members: int, invitations: int) -> None:
    for _ in range(members):
        MembershipFactory.create(workspace=team.workspace, role=Role.MEMBER)
    for i in range(invitations):
        Invitation.objects.create(
            workspace=team.workspace,
            email=f"invitee{i}@example.com",
            token_hash=f"{i:064x}",
            invited_by=team.owner,
            expires_at="2999-01-01T00:00:00Z",
        )


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_members_page_queries_are_bounded(client_for, alpha, django_assert_max_num_queries):
    _fill_members(alpha, members=20, invitations=10)
    client = client_for(alpha.owner, alpha.workspace)
    client.get(reverse("workspaces:members"))  # warm the constance cache

    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(reverse("workspaces:members"))

    assert len(response.context["members"]) == 23
    assert len(response.context["invitations"]) == 10


def test_members_page_queries_do_not_grow_with_rows(client_for, alpha):
    client = client_for(alpha.owner, alpha.workspace)
    url = reverse("workspaces:members")
    client.get(url)
    small = _count(client, url)

    _fill_members(alpha, members=20, invitations=10)

    assert _count(client, url) == small


def test_workspace_list_queries_are_bounded(client_for, alpha, django_assert_max_num_queries):
    for _ in range(20):
        MembershipFactory.create(workspace=WorkspaceFactory.create(), user=alpha.member, role=Role.ADMIN)
    client = client_for(alpha.member, alpha.workspace)
    client.get(reverse("workspaces:list"))

    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(reverse("workspaces:list"))

    assert len(response.context["memberships"]) == 21


def test_workspace_list_queries_do_not_grow_with_rows(client_for, alpha):
    client = client_for(alpha.member, alpha.workspace)
    url = reverse("workspaces:list")
    client.get(url)
    small = _count(client, url)

    for _ in range(20):
        MembershipFactory.create(workspace=WorkspaceFactory.create(), user=alpha.member, role=Role.OWNER)

    assert _count(client, url) == small


def test_dashboard_with_switcher_queries_do_not_grow_with_workspaces(client_for, alpha):
    user = UserFactory.create()
    MembershipFactory.create(workspace=alpha.workspace, user=user)
    client = client_for(user, alpha.workspace)
    url = reverse("dashboard")
    client.get(url)
    small = _count(client, url)

    for _ in range(20):
        MembershipFactory.create(workspace=WorkspaceFactory.create(), user=user)

    assert _count(client, url) == small

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces import services
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.roles import Role
from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

SWITCH = reverse("workspaces:switch")
DASHBOARD = reverse("dashboard")


@pytest.fixture
def two_workspaces(alpha, beta):
    """alpha's member, also a member of beta, working in alpha."""
    MembershipFactory.create(workspace=beta.workspace, user=alpha.member, role=Role.MEMBER)
    return alpha.member


@pytest.mark.parametrize(
    "next_url",
    [
        "/workspaces/current/members/",
        "/workspaces/current/settings/?tab=name",
        "/workspaces/",
        "/dashboard/#recent",
        "http://testserver/workspaces/current/members/",
    ],
)
def test_switch_sets_current_workspace_and_returns_to_a_page_without_object(
    client_for, alpha, beta, two_workspaces, next_url
):
    client = client_for(two_workspaces, alpha.workspace)

    response = client.post(SWITCH, {"workspace": beta.workspace.pk, "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == next_url
    assert client.session[SESSION_KEY] == beta.workspace.pk
    assert client.get(DASHBOARD).context["current_workspace"] == beta.workspace


@pytest.mark.parametrize(
    "next_url",
    [
        "/workspaces/current/members/5/role/",
        "/workspaces/current/members/5/remove/?x=1",
        "/workspaces/current/invitations/7/resend/",
        "/workspaces/invitations/some-token/",
    ],
)
def test_switch_from_a_page_naming_an_object_falls_back(client_for, alpha, beta, two_workspaces, next_url):
    client = client_for(two_workspaces, alpha.workspace)

    response = client.post(SWITCH, {"workspace": beta.workspace.pk, "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    assert client.session[SESSION_KEY] == beta.workspace.pk


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/workspaces/",
        "http://testserver.evil.example/",
        "https:///evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "/no/such/page/",
        "",
    ],
)
def test_switch_ignores_unsafe_or_unknown_next(client_for, alpha, beta, two_workspaces, next_url):
    client = client_for(two_workspaces, alpha.workspace)

    response = client.post(SWITCH, {"workspace": beta.workspace.pk, "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    assert client.session[SESSION_KEY] == beta.workspace.pk


def test_switch_without_next_lands_on_dashboard(client_for, alpha, beta, two_workspaces):
    client = client_for(two_workspaces, alpha.workspace)

    response = client.post(SWITCH, {"workspace": beta.workspace.pk})

    assert response["Location"] == DASHBOARD
    assert client.session[SESSION_KEY] == beta.workspace.pk


def test_switch_refuses_http_next_on_a_secure_request(client_for, alpha, beta, two_workspaces):
    client = client_for(two_workspaces, alpha.workspace)

    response = client.post(
        SWITCH, {"workspace": beta.workspace.pk, "next": "http://testserver/workspaces/"}, secure=True
    )

    assert response["Location"] == DASHBOARD


@pytest.mark.parametrize("value", ["abc", "", " 1", "1.0", "-1", "²", "\u0661", "0", "99999999999999999999999"])
def test_switch_to_garbage_answers_404_and_changes_nothing(client_for, alpha, value):
    client = client_for(alpha.member, alpha.workspace)

    response = client.post(SWITCH, {"workspace": value, "next": "/workspaces/"})

    assert response.status_code == 404
    assert client.session[SESSION_KEY] == alpha.workspace.pk


def test_switch_to_a_foreign_workspace_answers_404_and_changes_nothing(client_for, alpha, beta):
    client = client_for(alpha.owner, alpha.workspace)

    response = client.post(SWITCH, {"workspace": beta.workspace.pk, "next": "/workspaces/"})

    assert response.status_code == 404
    assert client.session[SESSION_KEY] == alpha.workspace.pk
    assert client.get(DASHBOARD).context["current_workspace"] == alpha.workspace


def test_switch_to_a_deleted_workspace_answers_404(client_for, alpha):
    doomed = WorkspaceFactory.create(name="Doomed")
    MembershipFactory.create(workspace=doomed, user=alpha.owner, role=Role.OWNER)
    client = client_for(alpha.owner, alpha.workspace)
    services.workspace_delete(workspace=doomed, acting_user=alpha.owner, confirm_name="Doomed")

    response = client.post(SWITCH, {"workspace": doomed.pk})

    assert response.status_code == 404
    assert client.session[SESSION_KEY] == alpha.workspace.pk


def test_switch_needs_post(client_for, alpha):
    response = client_for(alpha.member, alpha.workspace).get(SWITCH, {"workspace": alpha.workspace.pk})

    assert response.status_code == 405


def test_switch_needs_login(client, alpha):
    response = client.post(SWITCH, {"workspace": alpha.workspace.pk})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_session_naming_a_workspace_the_user_left_falls_back_to_one_they_are_in(client_for, alpha, beta):
    MembershipFactory.create(workspace=beta.workspace, user=alpha.member)
    client = client_for(alpha.member, beta.workspace)
    services.workspace_member_leave(workspace=beta.workspace, acting_user=alpha.member)

    response = client.get(DASHBOARD)

    assert response.context["current_workspace"] == alpha.workspace
    assert client.session[SESSION_KEY] == alpha.workspace.pk

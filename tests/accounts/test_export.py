"""Export my data: a JSON download of everything stored about the signed-in user and nothing
about anyone else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import user_export_data
from apps.audit.services import audit_record
from apps.workspaces.services import workspace_create, workspace_member_invite, workspace_rename
from tests.accounts.helpers import audit_rows
from tests.conftest import ClientFor, Team
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EXPORT = "/account/privacy/export/"


@pytest.fixture
def stranger(beta: Team) -> User:
    """Another tenant's owner with data of their own that must never leak."""
    secret = workspace_create(acting_user=beta.owner, name="Zanzibar Secret Lab")
    workspace_rename(workspace=secret, name="Zanzibar Secret Lab Renamed", acting_user=beta.owner)
    workspace_member_invite(workspace=secret, email="hidden-invitee@example.net", role="member", acting_user=beta.owner)
    EmailAddress.objects.create(user=beta.owner, email="beta-secondary@example.net", verified=False)
    audit_record(actor=beta.owner, action="user.login", target=beta.owner)
    beta.owner.preferences = {"default_model": "stranger-model-xyz"}
    beta.owner.save()
    return beta.owner


def download(client: Client) -> tuple[Any, dict[str, Any]]:
    response = client.post(EXPORT)
    return response, json.loads(response.content)


def test_export_is_a_json_attachment(client_for: ClientFor, alpha: Team) -> None:
    response, _ = download(client_for(alpha.owner, alpha.workspace))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="aikeedo-export-')
    assert response["Content-Disposition"].endswith('.json"')


def test_export_contains_the_users_profile_addresses_workspaces_and_activity(
    client_for: ClientFor, alpha: Team
) -> None:
    user = alpha.admin
    user.preferences = {"theme": "dark"}
    user.save()
    client = client_for(user, alpha.workspace)
    workspace_create(acting_user=user, name="Side Project")

    _, data = download(client)

    assert data["format_version"] == 1
    assert data["profile"]["email"] == user.email
    assert data["profile"]["id"] == user.pk
    assert data["profile"]["preferences"] == {"theme": "dark"}
    assert data["email_addresses"] == [{"email": user.email, "verified": True, "primary": True}]
    assert {(w["name"], w["role"]) for w in data["workspaces"]} == {("Alpha", "admin"), ("Side Project", "owner")}
    assert "workspace.create" in {a["action"] for a in data["activity"]}
    assert "user.login" in {a["action"] for a in data["activity"]}
    assert data["social_accounts"] == []
    assert len(data["sessions"]) == 1


@pytest.mark.outsider("accounts:export")
def test_export_contains_nothing_of_another_user(client_for: ClientFor, alpha: Team, stranger: User) -> None:
    response, data = download(client_for(alpha.owner, alpha.workspace))

    raw = response.content.decode()
    for secret in (
        stranger.email,
        "beta-secondary@example.net",
        "hidden-invitee@example.net",
        "Zanzibar",
        "Beta",
        "stranger-model-xyz",
    ):
        assert secret not in raw, secret
    assert {w["name"] for w in data["workspaces"]} == {"Alpha"}
    assert data["invitations_sent"] == []


def test_export_lists_invitations_the_user_sent(client_for: ClientFor, alpha: Team) -> None:
    workspace_member_invite(
        workspace=alpha.workspace, email="friend@example.org", role="member", acting_user=alpha.owner
    )

    _, data = download(client_for(alpha.owner, alpha.workspace))

    assert [(i["email"], i["status"]) for i in data["invitations_sent"]] == [("friend@example.org", "pending")]


def test_export_leaves_out_deleted_workspaces(client_for: ClientFor, alpha: Team) -> None:
    from apps.workspaces.services import workspace_delete

    gone = workspace_create(acting_user=alpha.owner, name="Old Experiment")
    workspace_delete(workspace=gone, acting_user=alpha.owner, confirm_name="Old Experiment")

    _, data = download(client_for(alpha.owner, alpha.workspace))

    assert {w["name"] for w in data["workspaces"]} == {"Alpha"}


def test_export_writes_an_audit_row(client_for: ClientFor, alpha: Team) -> None:
    download(client_for(alpha.owner, alpha.workspace))

    [row] = audit_rows("user.data_export")
    assert row.actor == alpha.owner
    assert row.target_id == str(alpha.owner.pk)


def test_export_by_get_is_not_allowed(client_for: ClientFor, alpha: Team) -> None:
    response = client_for(alpha.owner, alpha.workspace).get(EXPORT)

    assert response.status_code == 405
    assert not audit_rows("user.data_export")


@pytest.mark.outsider("accounts:export")
def test_export_requires_login(client: Client) -> None:
    response = client.post(EXPORT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_export_data_is_json_serialisable_for_a_bare_user() -> None:
    user = UserFactory.create()

    data = user_export_data(user=user)

    json.dumps(data)
    assert data["workspaces"] == []
    assert data["profile"]["last_login"] is None

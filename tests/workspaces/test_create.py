from __future__ import annotations

import pytest
from constance.test.pytest import override_config
from django.urls import reverse

from apps.workspaces import services
from apps.workspaces.exceptions import WorkspaceError, WorkspaceLimitReached
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from tests.factories import MembershipFactory, WorkspaceFactory
from tests.workspaces.conftest import unchanged

pytestmark = pytest.mark.django_db

CREATE = reverse("workspaces:create")


def test_create_view_makes_creator_owner_and_switches_to_it(client_for, alpha):
    client = client_for(alpha.member, alpha.workspace)

    response = client.post(CREATE, {"name": "  Research lab  "})

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    workspace = Workspace.objects.get(name="Research lab")
    assert workspace.created_by == alpha.member
    assert not workspace.is_personal
    assert list(Membership.objects.filter(workspace=workspace).values_list("user", "role")) == [
        (alpha.member.pk, Role.OWNER)
    ]
    assert client.session[SESSION_KEY] == workspace.pk
    assert client.get(reverse("dashboard")).context["current_workspace"] == workspace


def test_create_page_renders_the_form(client_for, alpha):
    response = client_for(alpha.member, alpha.workspace).get(CREATE)

    assert response.status_code == 200
    assert 'name="name"' in response.content.decode()


def test_create_requires_login(client):
    response = client.post(CREATE, {"name": "Sneaky"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Workspace.objects.exists()


def test_create_service_makes_creator_owner(outsider):
    workspace = services.workspace_create(acting_user=outsider, name="Side project")

    assert workspace.name == "Side project"
    assert workspace.slug.startswith("side-project-")
    assert Membership.objects.get(workspace=workspace, user=outsider).role == Role.OWNER


def test_create_service_gives_unique_slugs_to_equal_names(outsider):
    first = services.workspace_create(acting_user=outsider, name="Same")
    second = services.workspace_create(acting_user=outsider, name="Same")

    assert first.slug != second.slug


def test_create_folds_whitespace_in_the_name_to_one_line(outsider):
    workspace = services.workspace_create(acting_user=outsider, name="Acme\r\n  Bcc: evil@example.com")

    assert workspace.name == "Acme Bcc: evil@example.com"


@override_config(MAX_WORKSPACES_PER_USER=2)
def test_create_refused_at_limit_with_clear_message_and_nothing_created(client_for, outsider):
    one = services.workspace_create(acting_user=outsider, name="One")
    services.workspace_create(acting_user=outsider, name="Two")
    client = client_for(outsider, one)

    with unchanged():
        response = client.post(CREATE, {"name": "Three"})

    assert response.status_code == 400
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        "You already own 2 workspaces, the most your plan allows (2). Delete one or ask to raise the limit."
    ]
    assert client.session[SESSION_KEY] == one.pk
    assert not Workspace.objects.filter(name="Three").exists()


@override_config(MAX_WORKSPACES_PER_USER=1)
def test_create_service_refused_at_limit(outsider):
    services.workspace_create(acting_user=outsider, name="Mine")

    with unchanged(), pytest.raises(WorkspaceLimitReached, match=r"most your plan allows \(1\)"):
        services.workspace_create(acting_user=outsider, name="Another")


@override_config(MAX_WORKSPACES_PER_USER=1)
def test_create_limit_counts_only_active_workspaces_the_user_owns(outsider, alpha):
    # Admin of another workspace and owner of a deleted one: neither uses up the allowance.
    MembershipFactory.create(workspace=alpha.workspace, user=outsider, role=Role.ADMIN)
    gone = services.workspace_create(acting_user=outsider, name="Gone")
    services.workspace_delete(workspace=gone, acting_user=outsider, confirm_name="Gone")

    workspace = services.workspace_create(acting_user=outsider, name="Fresh")

    assert Membership.objects.get(workspace=workspace, user=outsider).role == Role.OWNER


@override_config(MAX_WORKSPACES_PER_USER=0)
def test_personal_workspace_is_created_whatever_the_limit(outsider):
    workspace = services.workspace_create_personal(user=outsider)

    assert workspace.is_personal
    assert Membership.objects.get(workspace=workspace).user == outsider


@pytest.mark.parametrize("name", ["", "   ", "\n\t"])
def test_create_with_blank_name_gives_400_with_field_error(client_for, outsider, name):
    with unchanged():
        response = client_for(outsider).post(CREATE, {"name": name})

    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["This field is required."]
    assert "This field is required." in response.content.decode()


def test_create_with_too_long_name_gives_400_with_field_error(client_for, outsider):
    with unchanged():
        response = client_for(outsider).post(CREATE, {"name": "x" * 101})

    assert response.status_code == 400
    assert "name" in response.context["form"].errors


def test_create_service_rejects_blank_name(outsider):
    with unchanged(), pytest.raises(WorkspaceError, match="Give the workspace a name"):
        services.workspace_create(acting_user=outsider, name="  \n ")


# ---------------------------------------------------------------------------- switcher


@pytest.mark.parametrize(
    "url_name", ["dashboard", "workspaces:list", "workspaces:members", "workspaces:settings", "workspaces:create"]
)
def test_switcher_renders_on_pages_with_the_users_workspaces(client_for, alpha, beta, url_name):
    MembershipFactory.create(workspace=beta.workspace, user=alpha.member)
    elsewhere = WorkspaceFactory.create(name="Not mine")
    MembershipFactory.create(workspace=elsewhere, role=Role.OWNER)

    response = client_for(alpha.member, beta.workspace).get(reverse(url_name))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="workspace-switcher"' in html
    assert f'<option value="{alpha.workspace.pk}" >Alpha</option>' in html
    assert f'<option value="{beta.workspace.pk}" selected>Beta</option>' in html
    assert "Not mine" not in html
    assert f'action="{reverse("workspaces:switch")}"' in html


def test_switcher_offers_create_link_to_a_user_without_workspace(client_for, outsider):
    html = client_for(outsider).get(reverse("dashboard")).content.decode()

    assert 'data-testid="workspace-switcher"' not in html
    assert f'href="{CREATE}"' in html


def test_switcher_lists_no_deleted_workspace(client_for, alpha):
    doomed = WorkspaceFactory.create(name="Doomed")
    MembershipFactory.create(workspace=doomed, user=alpha.owner, role=Role.OWNER)
    services.workspace_delete(workspace=doomed, acting_user=alpha.owner, confirm_name="Doomed")

    html = client_for(alpha.owner, alpha.workspace).get(reverse("dashboard")).content.decode()

    assert "Doomed" not in html

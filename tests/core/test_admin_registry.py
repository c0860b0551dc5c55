"""The admin is the back office: every model of our own apps is registered and its pages load."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models
from django.test import Client

from apps.audit.services import audit_record
from apps.workspaces.roles import Role
from apps.workspaces.services import workspace_member_invite
from tests.conftest import Team
from tests.factories import UserFactory

OWN_APPS = {"accounts", "workspaces", "audit", "credits", "generation", "chat", "apikeys", "ratelimits"}
OWN_MODELS = sorted(
    (model for model in apps.get_models() if model._meta.app_label in OWN_APPS),
    key=lambda model: model._meta.label,
)


def _admin_url(model: type[models.Model], page: str, *args: object) -> str:
    from django.urls import reverse

    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


@pytest.fixture
def rows(alpha: Team, beta: Team) -> None:
    """A few rows of every model: users, workspaces and memberships from the teams, plus an
    invitation, audit events and credits rows."""
    workspace_member_invite(
        workspace=alpha.workspace, email="invitee@example.com", role=Role.MEMBER, acting_user=alpha.owner
    )
    audit_record(actor=alpha.owner, action="workspace.rename", target=alpha.workspace, workspace=alpha.workspace)
    # Credits rows through the real services: account, grant, ledger entries, a settled
    # reservation and the default rate cards.
    from apps.credits.rates import rate_cards_seed_defaults
    from apps.credits.services import credits_grant, credits_reserve, credits_settle

    credits_grant(workspace=alpha.workspace, amount="10", source="bonus", idempotency_key="registry-grant")
    hold = credits_reserve(workspace=alpha.workspace, amount="2", idempotency_key="registry-hold")
    credits_settle(reservation=hold, actual="1")
    rate_cards_seed_defaults()
    # The usage log has no writer yet besides the generation pipeline; one row for the pages.
    from apps.generation.models import Generation

    Generation.objects.create(workspace=alpha.workspace, user=alpha.owner, model_label="mock-chat", outcome="ok")
    from apps.chat.models import Conversation, Message

    conversation = Conversation.objects.create(workspace=alpha.workspace, user=alpha.owner, title="Hello")
    Message.objects.create(workspace=alpha.workspace, conversation=conversation, role="user", content="Hi")
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.chat.services import chat_attachment_create

    notes = SimpleUploadedFile("notes.txt", b"Meeting notes", content_type="text/plain")
    chat_attachment_create(conversation=conversation, user=alpha.owner, name="notes.txt", file=notes)
    from apps.apikeys.services import apikey_create
    from apps.ratelimits.models import WorkspaceRateLimit

    apikey_create(workspace=alpha.workspace, acting_user=alpha.owner, name="Registry", scopes=["chat"])
    WorkspaceRateLimit.objects.create(workspace=alpha.workspace, key_rpm=10)
    from apps.workspaces.entitlements import Entitlements
    from apps.workspaces.services import workspace_entitlements_set

    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="pro", plan_name="Pro"))


@pytest.fixture
def superuser_client(client: Client, rows: None) -> Client:
    client.force_login(UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True))
    return client


def test_own_apps_have_models():
    # Guards the parametrised tests below against silently running on nothing.
    assert {model._meta.app_label for model in OWN_MODELS} == OWN_APPS


@pytest.mark.parametrize("model", OWN_MODELS, ids=lambda model: model._meta.label)
def test_model_is_registered_in_the_admin(model):
    assert model in admin.site._registry


@pytest.mark.django_db
@pytest.mark.parametrize("model", OWN_MODELS, ids=lambda model: model._meta.label)
def test_changelist_lists_rows_for_a_superuser(superuser_client, model):
    assert model._default_manager.exists()

    response = superuser_client.get(_admin_url(model, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.django_db
@pytest.mark.parametrize("model", OWN_MODELS, ids=lambda model: model._meta.label)
def test_change_page_of_a_row_loads(superuser_client, model):
    obj = model._default_manager.order_by("pk").first()

    response = superuser_client.get(_admin_url(model, "change", obj.pk))

    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", OWN_MODELS, ids=lambda model: model._meta.label)
def test_add_page_loads_or_is_forbidden_when_adding_is_disabled(superuser_client, model, rf):
    model_admin = admin.site._registry[model]
    request = rf.get("/")
    request.user = UserFactory.build(is_staff=True, is_superuser=True)

    response = superuser_client.get(_admin_url(model, "add"))

    assert response.status_code == (200 if model_admin.has_add_permission(request) else 403)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model", [m for m in OWN_MODELS if admin.site._registry[m].search_fields], ids=lambda model: model._meta.label
)
def test_changelist_search_runs(superuser_client, model):
    response = superuser_client.get(_admin_url(model, "changelist"), {"q": "alpha"})

    assert response.status_code == 200

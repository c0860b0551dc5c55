from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.audit.services import audit_anonymise_actor, audit_record
from tests.factories import UserFactory, WorkspaceFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db


def _create_workspace_through_the_web(
    client: Client, headers: dict[str, str] | None = None
) -> tuple[TestResponse, AuditEvent]:
    response = client.post("/workspaces/new/", {"name": "Audited Team"}, headers=headers)
    assert response.status_code == 302, response.content
    return response, AuditEvent.objects.get(action="workspace.create", target_label="Audited Team")


def test_records_actor_action_target_workspace_and_metadata(alpha):
    event = audit_record(
        actor=alpha.owner,
        action="workspace.rename",
        target=alpha.workspace,
        workspace=alpha.workspace,
        metadata={"from": "Old", "to": "Alpha"},
    )

    event.refresh_from_db()
    assert event.actor == alpha.owner
    assert event.actor_label == "alpha-owner@example.com"
    assert event.action == "workspace.rename"
    assert event.target_type == "workspaces.workspace"
    assert event.target_id == str(alpha.workspace.pk)
    assert event.target_label == "Alpha"
    assert event.workspace == alpha.workspace
    assert event.metadata == {"from": "Old", "to": "Alpha"}
    assert event.created_at is not None


def test_outside_a_request_ip_user_agent_request_id_and_impersonator_are_empty(alpha):
    event = audit_record(actor=alpha.owner, action="user.login", target=alpha.owner)

    event.refresh_from_db()
    assert event.ip is None
    assert event.user_agent == ""
    assert event.request_id == ""
    assert event.impersonator_id is None


def test_system_action_without_actor_or_target_has_empty_labels(db):
    event = audit_record(actor=None, action="system.cleanup")

    event.refresh_from_db()
    assert event.actor is None
    assert event.actor_label == ""
    assert (event.target_type, event.target_id, event.target_label) == ("", "", "")
    assert event.metadata == {}
    assert str(event).endswith("system system.cleanup")


def test_unsaved_actor_is_recorded_as_no_actor(db):
    event = audit_record(actor=UserFactory.build(), action="user.login_failed")

    assert event.actor_id is None
    assert event.actor_label == ""


def test_long_target_label_is_truncated_to_the_column(db):
    workspace = WorkspaceFactory.create(name="x" * 100)
    workspace.name = "y" * 400  # str() of a target may be longer than the column

    event = audit_record(actor=None, action="workspace.rename", target=workspace)

    event.refresh_from_db()
    assert event.target_label == "y" * 255


def test_inside_a_request_stores_ip_user_agent_and_the_echoed_request_id(alpha, client_for):
    client = client_for(alpha.owner, alpha.workspace)

    response, event = _create_workspace_through_the_web(client, headers={"User-Agent": "AuditTest/1.0 (pytest)"})

    assert event.actor == alpha.owner
    assert event.ip == "127.0.0.1"
    assert event.user_agent == "AuditTest/1.0 (pytest)"
    assert len(event.request_id) == 32
    assert event.request_id == response["X-Request-ID"]
    assert event.impersonator_id is None
    assert event.workspace is not None
    assert event.workspace.name == "Audited Team"


def test_inside_a_request_keeps_a_client_supplied_request_id(alpha, client_for):
    client = client_for(alpha.owner, alpha.workspace)

    response, event = _create_workspace_through_the_web(client, headers={"X-Request-ID": "trace-abc-123456"})

    assert response["X-Request-ID"] == "trace-abc-123456"
    assert event.request_id == "trace-abc-123456"


def test_request_context_does_not_leak_into_work_done_after_the_request(alpha, client_for):
    client = client_for(alpha.owner, alpha.workspace)
    _create_workspace_through_the_web(client, headers={"User-Agent": "AuditTest/1.0"})

    later = audit_record(actor=alpha.owner, action="user.data_export", target=alpha.owner)

    later.refresh_from_db()
    assert (later.ip, later.user_agent, later.request_id, later.impersonator_id) == (None, "", "", None)


def test_impersonating_staff_member_is_taken_from_the_hijack_history(alpha, client_for):
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    client = client_for(alpha.owner, alpha.workspace)
    session = client.session
    session["hijack_history"] = [str(staff.pk)]  # what django-hijack stores
    session.save()

    _, event = _create_workspace_through_the_web(client)

    assert event.actor == alpha.owner
    assert event.impersonator_id == staff.pk


def test_nested_impersonation_records_the_staff_member_who_started_it(alpha, client_for):
    superuser = UserFactory.create(is_staff=True, is_superuser=True)
    support = UserFactory.create(is_staff=True)
    client = client_for(alpha.owner, alpha.workspace)
    session = client.session
    session["hijack_history"] = [str(superuser.pk), str(support.pk)]
    session.save()

    _, event = _create_workspace_through_the_web(client)

    assert event.impersonator_id == superuser.pk


@pytest.mark.parametrize("history", [[], ["not-a-pk"], "12", None])
def test_missing_or_malformed_hijack_history_records_no_impersonator(alpha, client_for, history):
    client = client_for(alpha.owner, alpha.workspace)
    session = client.session
    session["hijack_history"] = history
    session.save()

    _, event = _create_workspace_through_the_web(client)

    assert event.impersonator_id is None


def test_impersonator_deleted_mid_session_does_not_break_the_audited_action(alpha, client_for):
    staff = UserFactory.create(is_staff=True)
    client = client_for(alpha.owner, alpha.workspace)
    session = client.session
    session["hijack_history"] = [str(staff.pk)]
    session.save()
    staff.delete()

    _, event = _create_workspace_through_the_web(client)

    assert event.impersonator_id is None
    assert event.actor == alpha.owner


def test_rows_survive_the_actor_and_keep_the_anonymised_label(alpha):
    event = audit_record(actor=alpha.member, action="user.login", target=alpha.member)
    other = audit_record(actor=alpha.owner, action="user.login", target=alpha.owner)
    member_pk = alpha.member.pk

    assert audit_anonymise_actor(user_id=member_pk, label=f"deleted-user-{member_pk}") == 1
    alpha.member.delete()

    event.refresh_from_db()
    other.refresh_from_db()
    assert event.actor_id is None
    assert event.actor_label == f"deleted-user-{member_pk}"
    assert other.actor_label == "alpha-owner@example.com"


def test_for_workspace_returns_only_that_workspaces_events(alpha, beta):
    mine = audit_record(actor=alpha.owner, action="workspace.rename", workspace=alpha.workspace)
    audit_record(actor=beta.owner, action="workspace.rename", workspace=beta.workspace)

    assert list(AuditEvent.objects.for_workspace(alpha.workspace)) == [mine]

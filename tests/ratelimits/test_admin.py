"""Workspace overrides in the back office: listed, searchable, and every change audited."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.ratelimits.models import WorkspaceRateLimit
from tests.factories import UserFactory, WorkspaceFactory
from tests.ratelimits.conftest import override

pytestmark = pytest.mark.django_db

BASE = "/admin/ratelimits/workspaceratelimit/"
BLANK = {f: "" for f in ("key_rpm", "key_tpm", "user_rpm", "user_tpm", "workspace_rpm", "workspace_tpm")}


@pytest.fixture
def staff(client: Client) -> User:
    user = UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def _events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith="ratelimits.").order_by("pk"))


def test_creating_an_override_is_audited(client, staff):
    workspace = WorkspaceFactory.create()

    response = client.post(f"{BASE}add/", {**BLANK, "workspace": workspace.pk, "key_rpm": "5", "note": "Abuse"})

    assert response.status_code == 302, response.content
    row = WorkspaceRateLimit.objects.get(workspace=workspace)
    assert (row.key_rpm, row.key_tpm, row.note) == (5, None, "Abuse")
    [event] = _events()
    assert (event.action, event.actor, event.workspace, event.target_id) == (
        "ratelimits.override_create",
        staff,
        workspace,
        str(row.pk),
    )
    assert event.metadata["key_rpm"] == {"from": None, "to": 5}
    assert event.metadata["workspace"] == {"from": None, "to": workspace.pk}


def test_changing_an_override_records_what_changed(client, staff):
    row = override(WorkspaceFactory.create(), key_rpm=5, workspace_tpm=1000)

    response = client.post(f"{BASE}{row.pk}/change/", {**BLANK, "key_rpm": "10", "workspace_tpm": "1000", "note": ""})

    assert response.status_code == 302, response.content
    [event] = _events()
    assert event.action == "ratelimits.override_change"
    assert event.metadata == {"key_rpm": {"from": 5, "to": 10}}


def test_the_workspace_of_an_override_cannot_be_changed(client, staff):
    workspace, other = WorkspaceFactory.create(), WorkspaceFactory.create()
    row = override(workspace, key_rpm=5)

    client.post(f"{BASE}{row.pk}/change/", {**BLANK, "workspace": other.pk, "key_rpm": "5"})

    row.refresh_from_db()
    assert row.workspace == workspace


def test_deleting_overrides_is_audited(client, staff):
    one, two = override(WorkspaceFactory.create(), key_rpm=1), override(WorkspaceFactory.create(), user_rpm=2)

    client.post(f"{BASE}{one.pk}/delete/", {"post": "yes"})
    client.post(BASE, {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"})

    assert not WorkspaceRateLimit.objects.exists()
    events = _events()
    assert [e.action for e in events] == ["ratelimits.override_delete"] * 2
    assert [e.metadata["key_rpm"] for e in events] == [1, None]
    assert [e.metadata["user_rpm"] for e in events] == [None, 2]


def test_changelist_lists_and_searches_overrides(client, staff):
    override(WorkspaceFactory.create(name="Alpha"), key_rpm=1)
    override(WorkspaceFactory.create(name="Beta"), key_rpm=2)

    everything = client.get(BASE)
    found = client.get(BASE, {"q": "alph"})

    assert everything.status_code == 200
    assert everything.context["cl"].result_count == 2
    assert [str(r.workspace) for r in found.context["cl"].result_list] == ["Alpha"]
    assert client.get(f"{BASE}add/").status_code == 200


def test_changelist_queries_do_not_grow_with_rows(client, staff):
    override(WorkspaceFactory.create(), key_rpm=1)
    client.get(BASE)  # warm the session and constance reads
    with CaptureQueriesContext(connection) as one_row:
        client.get(BASE)
    for n in range(5):
        override(WorkspaceFactory.create(), key_rpm=n)
    with CaptureQueriesContext(connection) as six_rows:
        client.get(BASE)

    assert len(six_rows) == len(one_row)

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.roles import Role
from bench.conftest import measure
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory


@pytest.fixture
def signed_in(db):  # type: ignore[no-untyped-def]
    workspace = WorkspaceFactory(name="Bench")
    owner = UserFactory()
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    for _ in range(49):
        MembershipFactory(workspace=workspace)
    client = Client()
    client.force_login(owner)
    session = client.session
    session[SESSION_KEY] = workspace.pk
    session.save()
    return client


@pytest.mark.parametrize("path", ["/dashboard/", "/workspaces/current/members/", "/healthz"])
def test_page_latency(signed_in, report, path):  # type: ignore[no-untyped-def]
    def hit() -> None:
        response = signed_in.get(path)
        assert response.status_code == 200

    hit()  # first request creates the session-tracking row; measure the steady state
    with CaptureQueriesContext(connection) as queries:
        hit()
    query_count = len(queries.captured_queries)
    result = measure(hit)
    report(f"GET {path}", result, queries=query_count)

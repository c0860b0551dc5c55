"""The platform API under `/api/v1/`: session or key authentication, scopes, tenant isolation
(another workspace's ids answer 404), pagination with a bounded number of queries, and the
OpenAPI schema with its docs page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.apikeys.models import ApiKey
from apps.audit.models import AuditEvent
from apps.chat.models import Conversation, Message
from apps.credits.services import credits_reserve, credits_settle
from tests.api.conftest import fund, make_key
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def chat(alpha: Team, catalog: None) -> Conversation:
    conversation = Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, title="Rainbows")
    Message.objects.create(workspace=alpha.workspace, conversation=conversation, role="user", content="why?")
    Message.objects.create(
        workspace=alpha.workspace, conversation=conversation, role="assistant", content="Light bends."
    )
    return conversation


def test_workspace_and_credits_with_a_key(alpha: Team, catalog: None) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["platform_read"])
    client = Client()
    workspace = client.get("/api/v1/workspace/", headers=bearer(raw)).json()
    assert workspace["slug"] == alpha.workspace.slug
    credits = client.get("/api/v1/credits/", headers=bearer(raw)).json()
    assert credits["available"] == "1000.0000"


def test_session_users_act_in_their_current_workspace(client_for: Any, alpha: Team, beta: Team) -> None:
    assert client_for(alpha.member, alpha.workspace).get("/api/v1/workspace/").json()["id"] == alpha.workspace.pk
    assert client_for(beta.member, beta.workspace).get("/api/v1/workspace/").json()["id"] == beta.workspace.pk


def test_anonymous_and_bad_keys_are_refused(alpha: Team, catalog: None) -> None:
    client = Client()
    assert client.get("/api/v1/workspace/").status_code in (401, 403)
    assert client.get("/api/v1/workspace/", headers=bearer("ak_nope")).status_code == 401
    key, raw = make_key(alpha, scopes=["platform_read"])
    from apps.apikeys.services import apikey_revoke

    apikey_revoke(key=key, acting_user=alpha.owner)
    assert client.get("/api/v1/workspace/", headers=bearer(raw)).status_code == 401


def test_scopes(alpha: Team, chat: Conversation) -> None:
    _, chat_only = make_key(alpha, scopes=["chat"])
    _, reader = make_key(alpha, scopes=["platform_read"])
    _, writer = make_key(alpha, scopes=["platform_write"])
    client = Client()
    assert client.get("/api/v1/conversations/", headers=bearer(chat_only)).status_code == 403
    assert client.get("/api/v1/conversations/", headers=bearer(reader)).status_code == 200
    assert client.delete(f"/api/v1/conversations/{chat.pk}/", headers=bearer(reader)).status_code == 403
    assert client.get("/api/v1/conversations/", headers=bearer(writer)).status_code == 200  # write implies read
    assert client.delete(f"/api/v1/conversations/{chat.pk}/", headers=bearer(writer)).status_code == 204
    assert not Conversation.objects.filter(pk=chat.pk).exists()
    assert AuditEvent.objects.filter(action="conversation.delete").exists()


def test_conversations_list_search_detail_and_export(alpha: Team, chat: Conversation) -> None:
    _, raw = make_key(alpha, scopes=["platform_read"])
    client = Client()
    listed = client.get("/api/v1/conversations/", {"q": "bends"}, headers=bearer(raw)).json()
    assert [c["id"] for c in listed["results"]] == [chat.pk]
    assert client.get("/api/v1/conversations/", {"q": "absent"}, headers=bearer(raw)).json()["count"] == 0
    detail = client.get(f"/api/v1/conversations/{chat.pk}/", headers=bearer(raw)).json()
    assert [m["content"] for m in detail["messages"]] == ["why?", "Light bends."]
    markdown = client.get(f"/api/v1/conversations/{chat.pk}/export/", headers=bearer(raw))
    assert markdown.status_code == 200
    assert "Light bends." in markdown.content.decode()
    exported = client.get(f"/api/v1/conversations/{chat.pk}/export/", {"format": "json"}, headers=bearer(raw))
    assert json.loads(exported.content)["title"] == "Rainbows"
    assert (
        client.get(f"/api/v1/conversations/{chat.pk}/export/", {"format": "pdf"}, headers=bearer(raw)).status_code
        == 400
    )
    assert client.get("/api/v1/conversations/", {"start": "not-a-date"}, headers=bearer(raw)).status_code == 400


@pytest.mark.outsider(
    "api:conversations", "api:conversation", "api:conversation_export", "api:api_keys", "api:api_key_revoke"
)
def test_outsiders_get_404_for_another_workspaces_objects(alpha: Team, beta: Team, chat: Conversation) -> None:
    _, beta_raw = make_key(beta, scopes=["platform_read", "platform_write"])
    alpha_key, _ = make_key(alpha, scopes=["chat"])
    client = Client()
    for method, path in [
        ("get", f"/api/v1/conversations/{chat.pk}/"),
        ("delete", f"/api/v1/conversations/{chat.pk}/"),
        ("get", f"/api/v1/conversations/{chat.pk}/export/"),
        ("post", f"/api/v1/api-keys/{alpha_key.pk}/revoke/"),
    ]:
        assert getattr(client, method)(path, headers=bearer(beta_raw)).status_code == 404, path
    assert client.get("/api/v1/conversations/", headers=bearer(beta_raw)).json()["count"] == 0
    assert alpha_key.pk not in [
        k["id"] for k in client.get("/api/v1/api-keys/", headers=bearer(beta_raw)).json()["results"]
    ]
    assert Conversation.objects.filter(pk=chat.pk).exists()
    alpha_key.refresh_from_db()
    assert alpha_key.revoked_at is None


def test_api_keys_create_once_and_revoke(client_for: Any, alpha: Team, catalog: None) -> None:
    owner = client_for(alpha.owner, alpha.workspace)
    created = owner.post(
        "/api/v1/api-keys/",
        data=json.dumps({"name": "CI", "scopes": ["chat"], "daily_cap": "5"}),
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"].startswith("ak_")
    assert body["daily_cap"] == "5.0000"
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash != body["key"]
    listed = owner.get("/api/v1/api-keys/").json()["results"]
    assert "key" not in listed[0]
    assert owner.post(f"/api/v1/api-keys/{key.pk}/revoke/").json()["state"] == "revoked"
    member = client_for(alpha.member, alpha.workspace)
    assert member.post("/api/v1/api-keys/", data={"name": "x", "scopes": ["chat"]}).status_code == 403
    assert member.post(f"/api/v1/api-keys/{key.pk}/revoke/").status_code == 403
    bad = owner.post("/api/v1/api-keys/", data=json.dumps({"name": "", "scopes": []}), content_type="application/json")
    assert bad.status_code == 400
    huge = {"name": "big", "scopes": ["chat"], "daily_cap": "2990579617860373.0027"}  # found by schemathesis
    assert owner.post("/api/v1/api-keys/", data=json.dumps(huge), content_type="application/json").status_code == 400


def test_a_key_cannot_mint_a_stronger_key(alpha: Team, catalog: None) -> None:
    _, raw = make_key(alpha, scopes=["platform_write"])
    client = Client()
    response = client.post(
        "/api/v1/api-keys/",
        data=json.dumps({"name": "more", "scopes": ["chat", "platform_write"]}),
        content_type="application/json",
        headers=bearer(raw),
    )
    assert response.status_code == 403
    same = client.post(
        "/api/v1/api-keys/",
        data=json.dumps({"name": "same", "scopes": ["platform_write"]}),
        content_type="application/json",
        headers=bearer(raw),
    )
    assert same.status_code == 201


def test_usage_is_paginated_and_filtered_with_bounded_queries(
    alpha: Team, catalog: None, django_assert_max_num_queries: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["platform_read"])
    client = Client()

    def spend(n: int, model: str) -> None:
        for i in range(n):
            hold = credits_reserve(
                workspace=alpha.workspace, units=100, idempotency_key=f"u-{model}-{i}", service="text", model=model
            )
            credits_settle(reservation=hold, actual_units=50)

    spend(3, "mock-chat")
    with django_assert_max_num_queries(12) as small:
        client.get("/api/v1/credits/usage/", headers=bearer(raw))
    spend(57, "other")
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get("/api/v1/credits/usage/", headers=bearer(raw)).json()
    assert page["count"] == 60
    assert len(page["results"]) == 50
    assert page["results"][0]["credits"] == "0.0050"
    filtered = client.get("/api/v1/credits/usage/", {"model": "mock-chat"}, headers=bearer(raw)).json()
    assert filtered["count"] == 3
    assert client.get("/api/v1/credits/usage/", {"page": 2}, headers=bearer(raw)).json()["results"]
    assert client.get("/api/v1/credits/usage/", {"page": 99}, headers=bearer(raw)).status_code == 404


def test_schema_is_generated_without_warnings_and_docs_are_served(client: Client) -> None:
    from django.core.management import call_command

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--urlconf", "apps.api.schema_urls", "--file", "/dev/null"
    )
    schema = client.get(reverse("api:schema"), {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/api/v1/conversations/"):
        assert path in paths
    assert "text/event-stream" in paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    docs = client.get(reverse("api:docs"))
    assert docs.status_code == 200
    assert b"cdn.jsdelivr" not in docs.content  # served from our static files


def test_a_key_made_by_a_command_reads_but_cannot_act(alpha: Team, chat: Conversation) -> None:
    from apps.apikeys.services import apikey_create

    _, raw = apikey_create(
        workspace=alpha.workspace, acting_user=None, name="cli", scopes=["platform_read", "platform_write"]
    )
    client = Client()
    assert client.get("/api/v1/credits/", headers=bearer(raw)).status_code == 200
    assert client.get(f"/api/v1/conversations/{chat.pk}/", headers=bearer(raw)).status_code == 200
    refused = client.delete(f"/api/v1/conversations/{chat.pk}/", headers=bearer(raw))
    assert refused.status_code == 403
    assert "no member to act as" in refused.json()["detail"]
    assert Conversation.objects.filter(pk=chat.pk).exists()


@pytest.mark.outsider("api:workspace", "api:credits", "api:usage")
def test_another_workspace_a_revoked_key_and_strangers_see_nothing_of_alphas_workspace_or_credits(
    alpha: Team, beta: Team, outsider: Any, catalog: None, client_for: Any
) -> None:
    from apps.apikeys.services import apikey_revoke

    fund(alpha.workspace)
    hold = credits_reserve(
        workspace=alpha.workspace, units=100, idempotency_key="alpha-spend", service="text", model="alpha-secret-model"
    )
    credits_settle(reservation=hold, actual_units=50)
    revoked, revoked_raw = make_key(alpha, scopes=["platform_read"])
    apikey_revoke(key=revoked, acting_user=alpha.owner)
    _, alpha_raw = make_key(alpha, scopes=["platform_read"])
    _, beta_raw = make_key(beta, scopes=["platform_read"])
    paths = [reverse("api:workspace"), reverse("api:credits"), reverse("api:usage")]
    # Guards the refusals below: alpha's own key does see alpha's workspace, balance and usage.
    own = Client().get(reverse("api:usage"), headers=bearer(alpha_raw))
    assert "alpha-secret-model" in own.content.decode()

    # Beta's key, and beta's member whose session asks for alpha: beta's own (empty) account.
    for client, headers in [(Client(), bearer(beta_raw)), (client_for(beta.member, alpha.workspace), {})]:
        workspace, credits, usage = (client.get(path, headers=headers) for path in paths)
        assert workspace.json()["id"] == beta.workspace.pk
        assert credits.json()["available"] == "0.0000"
        assert usage.json()["count"] == 0
        for response in (workspace, credits, usage):
            assert "alpha-secret-model" not in response.content.decode()
            assert alpha.workspace.slug not in response.content.decode()
    # A user in no workspace whose session asks for alpha: no current workspace, 404.
    stranger = client_for(outsider, alpha.workspace)
    for path in paths:
        response = stranger.get(path)
        assert response.status_code == 404
        assert "alpha-secret-model" not in response.content.decode()
    # A revoked key of alpha's, a made-up key, no credentials: 401.
    for headers in (bearer(revoked_raw), bearer("ak_nope"), {}):
        for path in paths:
            response = Client().get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert "alpha-secret-model" not in response.content.decode()

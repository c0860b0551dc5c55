"""Every way a `/v1` request can be wrong answers a 4xx in OpenAI's error shape — never a 500 —
and nothing is charged or held for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from constance.test.pytest import override_config
from django.utils import timezone

from apps.apikeys.services import apikey_revoke
from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel
from tests.api.conftest import FUNDS, Keyed, asgi_client, fund, make_key, run
from tests.conftest import Team

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hi there"}]


def call(
    raw: str | None, method: str, path: str, body: Any = None, *, content: bytes | None = None, **headers: str
) -> Any:
    async def scenario() -> Any:
        sent = dict(headers)
        if raw is not None:
            sent["Authorization"] = f"Bearer {raw}"
        async with asgi_client() as client:
            if content is not None:
                return await client.request(method, path, content=content, headers=sent)
            return await client.request(method, path, json=body, headers=sent)

    return run(scenario)


def assert_error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def nothing_charged(keyed: Keyed) -> None:
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS, 0)


BAD_BODIES = [
    ({}, "model"),
    ({"model": "mock-chat"}, "messages"),
    ({"model": "mock-chat", "messages": []}, "messages"),
    ({"model": "mock-chat", "messages": "hello"}, "messages"),
    ({"model": "mock-chat", "messages": [{"content": "x"}]}, "messages.0.role"),
    ({"model": "mock-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "mock-chat", "messages": [{"role": "user"}]}, "messages.0.content"),
    ({"model": "mock-chat", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    (
        {"model": "mock-chat", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages.0.content.0.text",
    ),
    ({"model": "mock-chat", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
    ({"model": "mock-chat", "messages": HELLO, "temperature": 3}, "temperature"),
    ({"model": "mock-chat", "messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"model": "mock-chat", "messages": HELLO, "top_p": 1.5}, "top_p"),
    ({"model": "mock-chat", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"model": "mock-chat", "messages": HELLO, "max_tokens": 10**9}, "max_tokens"),
    ({"model": "mock-chat", "messages": HELLO, "n": 2}, "n"),
    ({"model": "mock-chat", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "mock-chat", "messages": HELLO, "stop": 7}, "stop"),
    ({"model": "mock-chat", "messages": HELLO, "stream": "yes please"}, "stream"),
    ({"model": "mock-chat", "messages": HELLO, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": "mock-chat", "messages": HELLO, "tool_choice": "auto"}, "tool_choice"),
    (
        {"model": "mock-chat", "messages": HELLO, "tools": [{"type": "function", "function": {}}]},
        "tools.0.function.name",
    ),
    ({"model": "mock-chat", "messages": HELLO, "response_format": {"type": "xml"}}, "response_format.type"),
    ({"model": "mock-chat", "messages": HELLO, "presence_penalty": 9}, "presence_penalty"),
    ({"model": ["mock-chat"], "messages": HELLO}, "model"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES)
def test_every_invalid_chat_body_is_a_400_naming_the_field(keyed: Keyed, body: dict[str, Any], param: str) -> None:
    error = assert_error(call(keyed.raw, "POST", "/v1/chat/completions", body), 400, param=param)
    assert error["type"] == "invalid_request_error"
    nothing_charged(keyed)
    assert not Reservation.objects.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"null"],
    ids=["empty", "broken", "list", "str", "bytes", "null"],
)
def test_bodies_that_are_not_json_objects_are_400(keyed: Keyed, content: bytes) -> None:
    response = call(keyed.raw, "POST", "/v1/chat/completions", content=content, **{"Content-Type": "application/json"})
    assert_error(response, 400, code="invalid_json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock-embed"}, "input"),
        ({"model": "mock-embed", "input": []}, "input"),
        ({"model": "mock-embed", "input": [1, 2, 3]}, "input"),
        ({"model": "mock-embed", "input": ""}, "input"),
        ({"model": "mock-embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "mock-embed", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_every_invalid_embeddings_body_is_a_400(keyed: Keyed, body: dict[str, Any], param: str) -> None:
    assert_error(call(keyed.raw, "POST", "/v1/embeddings", body), 400, param=param)
    nothing_charged(keyed)


def test_wrong_capability_and_unknown_models(keyed: Keyed) -> None:
    assert_error(call(keyed.raw, "POST", "/v1/embeddings", {"model": "mock-chat", "input": "x"}), 400, param="model")
    assert_error(
        call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-embed", "messages": HELLO}), 400, param="model"
    )
    assert_error(
        call(keyed.raw, "POST", "/v1/chat/completions", {"model": "nope", "messages": HELLO}), 404, "model_not_found"
    )
    assert_error(  # in the catalog, but its provider is not configured
        call(keyed.raw, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO}), 404, "model_not_found"
    )
    assert_error(call(keyed.raw, "GET", "/v1/models/nope"), 404, "model_not_found")
    AIModel.objects.filter(model_id="mock-chat").update(enabled=False)
    assert_error(
        call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}),
        404,
        "model_not_found",
    )
    nothing_charged(keyed)


def test_tools_on_a_model_without_tools_are_refused(keyed: Keyed) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = {"model": "mock-chat", "messages": HELLO, "tools": [tool]}
    assert_error(call(keyed.raw, "POST", "/v1/chat/completions", body), 400, param="tools")


@pytest.mark.outsider("openai:models", "openai:chat_completions")
def test_authentication_errors(keyed: Keyed) -> None:
    assert_error(call(None, "GET", "/v1/models"), 401, "missing_api_key")
    assert_error(call("ak_wrong", "GET", "/v1/models"), 401, "invalid_api_key")
    assert_error(call(None, "GET", "/v1/models", Authorization="Basic abc"), 401)
    apikey_revoke(key=keyed.key, acting_user=keyed.team.owner)
    assert_error(call(keyed.raw, "GET", "/v1/models"), 401, "invalid_api_key")
    assert_error(call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}), 401)
    nothing_charged(keyed)


def test_expired_key_and_deleted_workspace(keyed: Keyed) -> None:
    _, expiring = make_key(keyed.team, expires_at=timezone.now() + timedelta(seconds=30))
    from apps.apikeys.models import ApiKey

    ApiKey.objects.filter(name="Test key").exclude(pk=keyed.key.pk).update(expires_at=timezone.now() - timedelta(1))
    assert_error(call(expiring, "GET", "/v1/models"), 401)
    keyed.workspace.deleted_at = timezone.now()
    keyed.workspace.save(update_fields=["deleted_at"])
    assert_error(call(keyed.raw, "GET", "/v1/models"), 401)


def test_scope_and_model_restrictions_are_403(alpha: Team, catalog: None) -> None:
    fund(alpha.workspace)
    _, embed_only = make_key(alpha, scopes=["embeddings"])
    assert_error(
        call(embed_only, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}),
        403,
        "insufficient_scope",
    )
    _, chat_only = make_key(alpha, scopes=["chat"], allowed_models=["mock-chat"])
    assert_error(call(chat_only, "POST", "/v1/embeddings", {"model": "mock-embed", "input": "x"}), 403)
    models = call(chat_only, "GET", "/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["mock-chat"]


def test_key_spending_cap_is_429_and_holds_nothing(alpha: Team, catalog: None) -> None:
    fund(alpha.workspace)
    _, capped = make_key(alpha, daily_cap_units=1)
    error = assert_error(
        call(capped, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}),
        429,
        "spending_cap_reached",
    )
    assert "cap" in error["message"]
    assert CreditAccount.objects.get(workspace=alpha.workspace).held_units == 0


@override_config(RATE_LIMIT_KEY_RPM=2)
def test_rate_limit_is_429_with_retry_after_and_headers(keyed: Keyed) -> None:
    for _ in range(2):
        ok = call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO})
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit-requests"] == "2"
    refused = call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO})
    assert_error(refused, 429, "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_unknown_endpoints_and_methods(keyed: Keyed) -> None:
    assert_error(call(keyed.raw, "GET", "/v1/chat/completions"), 405)
    assert_error(call(keyed.raw, "POST", "/v1/models"), 405)
    assert_error(call(keyed.raw, "GET", "/v1/nothing/here"), 404, "unknown_url")


def test_context_window_is_enforced(keyed: Keyed) -> None:
    AIModel.objects.filter(model_id="mock-chat").update(context_window=50, max_output_tokens=40)
    long = [{"role": "user", "content": "word " * 200}]
    assert_error(
        call(keyed.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": long}),
        400,
        "context_length_exceeded",
    )


@pytest.mark.outsider("openai:model", "openai:embeddings")
def test_a_revoked_or_missing_key_reads_no_model_and_embeds_nothing_on_the_workspaces_credits(keyed: Keyed) -> None:
    embed = {"model": "mock-embed", "input": "alpha's text"}
    # Guards the refusals below: the same key reads the model before it is revoked.
    assert call(keyed.raw, "GET", "/v1/models/mock-chat").json()["id"] == "mock-chat"
    apikey_revoke(key=keyed.key, acting_user=keyed.team.owner)

    for raw, code in [(keyed.raw, "invalid_api_key"), ("ak_wrong", "invalid_api_key"), (None, "missing_api_key")]:
        model = call(raw, "GET", "/v1/models/mock-chat")
        assert_error(model, 401, code)
        assert "mock-chat" not in model.text
        embedded = call(raw, "POST", "/v1/embeddings", embed)
        assert_error(embedded, 401, code)
        assert "embedding" not in embedded.text

    nothing_charged(keyed)
    assert not Reservation.objects.exists()

"""The API keys pages: everyone in the workspace sees the list; owners and admins create keys
(shown once, in the response, stored nowhere) and revoke them, with audit rows; members get
403; other workspaces' keys answer 404; the list costs the same queries at any size."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.apikeys import urls
from apps.apikeys.exceptions import ApiKeyInvalid
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_authenticate, apikey_revoke, hash_key
from apps.audit.models import AuditEvent
from apps.workspaces.services import workspace_create_personal
from tests.apikeys.conftest import assert_stored_nowhere, make_key
from tests.conftest import Team

pytestmark = pytest.mark.django_db

LIST = reverse("apikeys:list")
CREATE = reverse("apikeys:create")
# session 1, user 1, allauth user-session tracking 5 (with savepoints), current membership 1,
# constance branding 1 (0 when its cache backend is set), balance widget 1, switcher 1, the
# sidebar's conversation history 1, the page's count and rows 2.
MAX_LIST_QUERIES = 14


def revoke_url(key: ApiKey) -> str:
    return reverse("apikeys:revoke", args=[key.pk])


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Support bot", "scopes": ["chat", "embeddings"]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# ---------------------------------------------------------------------------- list


@pytest.mark.parametrize("who", ["owner", "admin", "member"])
def test_everyone_in_the_workspace_sees_its_keys(alpha, beta, client_for, who):
    key, raw_key = make_key(alpha, name="Support bot", daily_cap_units=25_000)
    make_key(beta, name="Beta's secret integration")

    response = client_for(getattr(alpha, who), alpha.workspace).get(LIST)

    assert response.status_code == 200
    assert list(response.context["keys"]) == [key]
    html = response.content.decode()
    assert "Support bot" in html
    assert f"{key.prefix}…" in html
    assert "2.5 / day" in html
    assert "Beta's secret integration" not in html
    assert raw_key not in html
    assert key.key_hash not in html
    can_manage = who != "member"
    assert response.context["can_manage"] is can_manage
    assert (CREATE in html) is can_manage
    assert (revoke_url(key) in html) is can_manage


def test_list_shows_state_creator_and_use(alpha, client_for):
    used, raw_key = make_key(alpha, name="used", by="admin")
    apikey_authenticate(raw_key=raw_key)
    revoked, _ = make_key(alpha, name="revoked")
    apikey_revoke(key=revoked, acting_user=alpha.owner)

    response = client_for(alpha.owner, alpha.workspace).get(LIST)

    html = response.content.decode()
    assert f"by {alpha.admin.name}" in html
    assert "Revoked" in html
    assert revoke_url(used) in html
    assert revoke_url(revoked) not in html  # nothing left to revoke


def test_list_is_paginated_by_fifty(alpha, client_for):
    for i in range(55):
        make_key(alpha, name=f"key {i}")
    client = client_for(alpha.member, alpha.workspace)

    first = client.get(LIST)
    second = client.get(LIST, {"page": 2})

    assert len(first.context["keys"]) == 50
    assert [k.name for k in second.context["keys"]] == [f"key {i}" for i in range(4, -1, -1)]
    assert 'data-testid="pagination"' in first.content.decode()


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_queries_do_not_grow_with_keys(alpha, client_for, django_assert_max_num_queries):
    for i in range(5):
        make_key(alpha, name=f"key {i}", by="admin" if i % 2 else "owner")
    client = client_for(alpha.owner, alpha.workspace)
    client.get(LIST)  # warm the constance cache
    five = _count(client, LIST)

    for i in range(25):
        make_key(alpha, name=f"more {i}", by="admin" if i % 2 else "owner")

    assert _count(client, LIST) == five
    with django_assert_max_num_queries(MAX_LIST_QUERIES):
        response = client.get(LIST)
    assert len(response.context["keys"]) == 30


# ---------------------------------------------------------------------------- create


def test_create_form_offers_scopes_and_available_models(alpha, client_for, catalog):
    response = client_for(alpha.owner, alpha.workspace).get(CREATE)

    assert response.status_code == 200
    html = response.content.decode()
    for scope in ("chat", "images", "audio", "embeddings", "platform_read", "platform_write"):
        assert f'value="{scope}"' in html
    choices = dict(response.context["form"].fields["allowed_models"].choices)
    assert {"mock-chat", "mock-embed"} <= set(choices)
    assert "gpt-4o" not in choices  # its provider is not enabled


def test_the_form_comes_with_chat_chosen_so_submitting_it_as_it_is_works(alpha, client_for, catalog):
    client = client_for(alpha.owner, alpha.workspace)

    html = client.get(CREATE).content.decode()
    checked = re.findall(r'<input type="checkbox" name="scopes" value="([^"]+)"[^>]*\bchecked\b', html)
    # What a browser posts for the form as it comes, once a name is typed in.
    response = client.post(CREATE, {"name": "Quick key", "scopes": checked})

    assert checked == ["chat"]
    assert response.status_code == 200
    assert ApiKey.objects.get().scopes == ["chat"]


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_create_shows_the_key_once_and_stores_only_its_hash(alpha, client_for, catalog, who):
    client = client_for(getattr(alpha, who), alpha.workspace)

    response = client.post(
        CREATE,
        _form(expires_in_days="7", daily_cap="1.5", monthly_cap="20", allowed_models=["mock-chat"]),
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw_key = response.context["raw_key"]
    key = ApiKey.objects.get()
    assert key.key_hash == hash_key(raw_key)
    html = response.content.decode()
    assert f'value="{raw_key}"' in html
    assert "will not be shown again" in html
    assert (key.name, key.scopes, key.created_by) == ("Support bot", ["chat", "embeddings"], getattr(alpha, who))
    assert (key.daily_cap_units, key.monthly_cap_units, key.allowed_models) == (15_000, 200_000, ["mock-chat"])
    assert key.expires_at is not None
    event = AuditEvent.objects.get(action="apikey.create")
    assert (event.actor, event.workspace, event.target_id) == (getattr(alpha, who), alpha.workspace, str(key.pk))
    assert event.ip == "127.0.0.1"
    # Not in the database, the session or the next page.
    assert_stored_nowhere(raw_key, client.session)
    assert raw_key not in client.get(LIST).content.decode()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_form(name=""), "This field is required."),
        (_form(scopes=[]), "Choose at least one scope."),
        (_form(scopes=["chat", "root"]), "Select a valid choice."),
        (_form(expires_in_days="0"), "greater than or equal to 1"),
        (_form(daily_cap="0"), "greater than zero"),
        (_form(monthly_cap="1.00001"), "4 decimal places"),
        (_form(allowed_models=["gpt-4o"]), "is not an available model"),
    ],
)
def test_create_refuses_invalid_input_with_400(alpha, client_for, catalog, data, error):
    response = client_for(alpha.owner, alpha.workspace).post(CREATE, data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="apikey.create").exists()


def test_a_member_cannot_create_keys(alpha, client_for):
    client = client_for(alpha.member, alpha.workspace)

    assert client.get(CREATE).status_code == 403
    response = client.post(CREATE, _form())

    assert response.status_code == 403
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="apikey.create").exists()


def test_signed_out_visitors_are_sent_to_log_in(alpha):
    key, _ = make_key(alpha)

    for response in (Client().get(LIST), Client().post(CREATE, _form()), Client().post(revoke_url(key))):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
    key.refresh_from_db()
    assert key.revoked_at is None


# ---------------------------------------------------------------------------- revoke


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owners_and_admins_revoke_after_confirming(alpha, client_for, who):
    key, raw_key = make_key(alpha, name="Leaked")
    client = client_for(getattr(alpha, who), alpha.workspace)

    confirm = client.get(revoke_url(key))
    assert confirm.status_code == 200
    assert "Revoke “Leaked”?" in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None  # showing the confirmation changes nothing

    response = client.post(revoke_url(key))

    assert response.status_code == 302
    assert response["Location"] == LIST
    key.refresh_from_db()
    assert (key.revoked_at is not None, key.revoked_by) == (True, getattr(alpha, who))
    event = AuditEvent.objects.get(action="apikey.revoke")
    assert (event.actor, event.workspace, event.target_id) == (getattr(alpha, who), alpha.workspace, str(key.pk))
    with pytest.raises(ApiKeyInvalid):
        apikey_authenticate(raw_key=raw_key)


def test_revoking_twice_changes_nothing(alpha, client_for):
    key, _ = make_key(alpha)
    client = client_for(alpha.owner, alpha.workspace)
    client.post(revoke_url(key))
    first = ApiKey.objects.get(pk=key.pk).revoked_at

    response = client.post(revoke_url(key))

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first
    assert AuditEvent.objects.filter(action="apikey.revoke").count() == 1


def test_a_member_cannot_revoke(alpha, client_for):
    key, _ = make_key(alpha)
    client = client_for(alpha.member, alpha.workspace)

    assert client.get(revoke_url(key)).status_code == 403
    assert client.post(revoke_url(key)).status_code == 403

    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditEvent.objects.filter(action="apikey.revoke").exists()


def test_revoke_needs_post(alpha, client_for):
    key, _ = make_key(alpha)

    assert client_for(alpha.owner, alpha.workspace).put(revoke_url(key)).status_code == 405


# ---------------------------------------------------------------------------- isolation


@pytest.fixture
def intruders(beta: Team, outsider: Any, client_for: Callable[..., Client]) -> dict[str, Client]:
    """Beta's owner in Beta, and an outsider who owns a workspace of their own."""
    own = workspace_create_personal(user=outsider)
    return {"beta owner": client_for(beta.owner, beta.workspace), "outsider": client_for(outsider, own)}


def case_list(alpha: Team, client: Client, key: ApiKey) -> None:
    response = client.get(LIST)
    assert response.status_code == 200
    assert list(response.context["keys"]) == []
    assert key.prefix not in response.content.decode()


def case_create(alpha: Team, client: Client, key: ApiKey) -> None:
    response = client.post(CREATE, _form(name="Mine"))
    assert response.status_code == 200
    created = ApiKey.objects.get(name="Mine")
    assert created.workspace != alpha.workspace


def case_revoke(alpha: Team, client: Client, key: ApiKey) -> None:
    assert client.get(revoke_url(key)).status_code == 404
    assert client.post(revoke_url(key)).status_code == 404


CASES = {"list": case_list, "create": case_create, "revoke": case_revoke}


def test_every_apikeys_url_has_an_isolation_case():
    assert {p.name for p in urls.urlpatterns} == set(CASES)


@pytest.mark.outsider(*(f"apikeys:{name}" for name in CASES))
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("intruder", ["beta owner", "outsider"])
def test_other_workspaces_cannot_see_or_touch_alphas_keys(alpha, intruders, intruder, name):
    key, raw_key = make_key(alpha)

    CASES[name](alpha, intruders[intruder], key)

    key.refresh_from_db()
    assert key.revoked_at is None
    assert apikey_authenticate(raw_key=raw_key) == key
    assert not AuditEvent.objects.filter(action="apikey.revoke").exists()

"""API key services: a key is shown once and stored only as a hash; authentication refuses
every key that must not work (with one message) and records use at most once a minute; scopes
and allowed models; who may create and revoke."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import user_suspend
from apps.apikeys.exceptions import ApiKeyError, ApiKeyInvalid, ApiKeyModelDenied, ApiKeyScopeDenied
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.services import (
    _touch,
    apikey_authenticate,
    apikey_check_model,
    apikey_check_scope,
    apikey_create,
    apikey_revoke,
)
from apps.audit.models import AuditEvent
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.services import workspace_delete_by_system
from tests.apikeys.conftest import assert_stored_nowhere, make_key
from tests.credits.helpers import Clock
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------- create


def test_create_returns_the_raw_key_once_and_stores_only_its_hash(alpha):
    key, raw_key = make_key(alpha, name="Support bot", scopes=[Scope.EMBEDDINGS, Scope.CHAT])

    assert raw_key.startswith("ak_")
    assert len(raw_key) == 43
    key.refresh_from_db()
    assert key.prefix == raw_key[:12]
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert key.key_hash != raw_key
    assert (key.name, key.scopes, key.created_by, key.workspace) == (
        "Support bot",
        ["chat", "embeddings"],  # declaration order, whatever order they were given in
        alpha.owner,
        alpha.workspace,
    )
    assert key.is_active
    assert_stored_nowhere(raw_key)


def test_each_key_is_different(alpha):
    raws = {make_key(alpha)[1] for _ in range(5)}

    assert len(raws) == 5
    assert ApiKey.objects.values("prefix").distinct().count() == 5


def test_create_writes_an_audit_row_with_the_prefix_never_the_key(alpha):
    key, raw_key = make_key(alpha, by="admin", daily_cap_units=50_000)

    event = AuditEvent.objects.get(action="apikey.create")
    assert (event.actor, event.workspace, event.target_id) == (alpha.admin, alpha.workspace, str(key.pk))
    assert event.metadata["prefix"] == key.prefix
    assert event.metadata["daily_cap_units"] == 50_000
    assert raw_key not in str(event.metadata)
    assert raw_key not in event.target_label


def test_create_stores_every_limit(alpha, catalog):
    expires_at = timezone.now() + timedelta(days=30)

    key, _ = make_key(
        alpha,
        scopes=[Scope.PLATFORM_READ],
        expires_at=expires_at,
        daily_cap_units=10_000,
        monthly_cap_units=200_000,
        allowed_models=["mock-chat", "mock-embed", "mock-chat"],
        rpm_limit=60,
        tpm_limit=100_000,
    )

    key.refresh_from_db()
    assert (key.expires_at, key.daily_cap_units, key.monthly_cap_units) == (expires_at, 10_000, 200_000)
    assert key.allowed_models == ["mock-chat", "mock-embed"]
    assert (key.rpm_limit, key.tpm_limit) == (60, 100_000)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "Give the key a name."),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"scopes": []}, "Choose at least one scope."),
        ({"scopes": ["chat", "admin"]}, "Unknown scope: admin."),
        ({"scopes": "chat"}, "as a list"),
        ({"expires_at": "past"}, "The expiry must be in the future."),
        ({"daily_cap_units": 0}, "greater than zero"),
        ({"monthly_cap_units": -5}, "greater than zero"),
        ({"daily_cap_units": 1.5}, "whole number"),
        ({"allowed_models": ["mock-chat", "no-such-model"]}, "Unknown model: no-such-model."),
        ({"rpm_limit": 0}, "requests per minute"),
        ({"tpm_limit": -1}, "tokens per minute"),
    ],
)
def test_create_refuses_invalid_values_and_writes_nothing(alpha, catalog, fields, message):
    if fields.get("expires_at") == "past":
        fields["expires_at"] = timezone.now() - timedelta(seconds=1)

    with pytest.raises(ApiKeyError, match=message) as excinfo:
        make_key(alpha, **fields)

    assert excinfo.value.status_code == 400
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="apikey.create").exists()


def test_create_collapses_whitespace_in_the_name(alpha):
    key, _ = make_key(alpha, name="  Support\n bot  ")

    assert key.name == "Support bot"


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_only_owners_and_admins_create_keys(alpha, outsider, who):
    user = outsider if who == "outsider" else alpha.member

    with pytest.raises(WorkspacePermissionDenied):
        apikey_create(workspace=alpha.workspace, acting_user=user, name="x", scopes=["chat"])

    assert not ApiKey.objects.exists()


def test_the_system_creates_without_a_role_and_is_audited_without_an_actor(alpha):
    key, _ = apikey_create(workspace=alpha.workspace, acting_user=None, name="CI", scopes=["chat"])

    assert key.created_by is None
    event = AuditEvent.objects.get(action="apikey.create")
    assert (event.actor, event.actor_label, event.workspace) == (None, "", alpha.workspace)


def test_no_keys_for_a_deleted_workspace(alpha):
    workspace_delete_by_system(workspace=alpha.workspace, acting_user=None, reason="test")

    with pytest.raises(ApiKeyError, match="deleted"):
        apikey_create(workspace=alpha.workspace, acting_user=None, name="CI", scopes=["chat"])
    with pytest.raises(WorkspacePermissionDenied):
        make_key(alpha)


# ---------------------------------------------------------------------------- authenticate


def test_authenticate_returns_the_key_with_workspace_creator_and_plan_in_one_query(alpha, django_assert_num_queries):
    from apps.workspaces.entitlements import Entitlements
    from apps.workspaces.services import workspace_entitlements_set

    key, raw_key = make_key(alpha)
    # The workspace's own plan, as billing pushes it, comes in the same query.
    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="pro", plan_name="Pro"))
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())  # used a moment ago: no touch

    # The key with its workspace, creator and the workspace's plan.
    with django_assert_num_queries(1):
        found = apikey_authenticate(raw_key=raw_key)
        assert found.workspace == alpha.workspace
        assert found.created_by == alpha.owner

    assert found.pk == key.pk


@pytest.mark.parametrize(
    "raw_key",
    ["", "ak_", "Bearer", "ak_" + "A" * 40, "sk-" + "A" * 40, "ak_" + "A" * 41, "ak_" + "é" * 40],
)
def test_authenticate_refuses_unknown_and_malformed_keys(alpha, raw_key):
    make_key(alpha)

    with pytest.raises(ApiKeyInvalid) as excinfo:
        apikey_authenticate(raw_key=raw_key)

    assert (excinfo.value.status_code, excinfo.value.message, excinfo.value.code) == (
        401,
        "Invalid API key.",
        "invalid_api_key",
    )


def test_authenticate_refuses_a_key_with_a_changed_character(alpha):
    _, raw_key = make_key(alpha)
    tampered = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")

    with pytest.raises(ApiKeyInvalid):
        apikey_authenticate(raw_key=tampered)


def _refusal(raw_key: str, caplog: pytest.LogCaptureFixture) -> ApiKeyInvalid:
    with caplog.at_level(logging.INFO, logger="apps.apikeys.services"), pytest.raises(ApiKeyInvalid) as excinfo:
        apikey_authenticate(raw_key=raw_key)
    return excinfo.value


def test_a_revoked_key_is_refused_immediately(alpha, caplog):
    key, raw_key = make_key(alpha)
    assert apikey_authenticate(raw_key=raw_key) == key

    apikey_revoke(key=key, acting_user=alpha.admin)

    error = _refusal(raw_key, caplog)
    assert (error.message, error.reason) == ("Invalid API key.", "revoked")
    assert "revoked" in caplog.text
    assert raw_key not in caplog.text


def test_an_expired_key_is_refused(alpha, monkeypatch, caplog):
    clock = Clock(monkeypatch)
    _, raw_key = make_key(alpha, expires_at=clock.now + timedelta(days=1))
    apikey_authenticate(raw_key=raw_key)

    clock.advance(days=1)

    error = _refusal(raw_key, caplog)
    assert (error.message, error.reason) == ("Invalid API key.", "expired")


def test_a_key_of_a_suspended_creator_is_refused(alpha, caplog):
    _, raw_key = make_key(alpha, by="admin")
    staff = UserFactory.create(is_staff=True)

    user_suspend(user=alpha.admin, reason="abuse", acting_user=staff)

    error = _refusal(raw_key, caplog)
    assert (error.message, error.reason) == ("Invalid API key.", "creator suspended or inactive")


def test_a_key_of_an_inactive_creator_is_refused(alpha, caplog):
    _, raw_key = make_key(alpha)
    alpha.owner.is_active = False
    alpha.owner.save(update_fields=["is_active"])

    assert _refusal(raw_key, caplog).reason == "creator suspended or inactive"


def test_a_key_of_a_deleted_workspace_is_refused(alpha, caplog):
    _, raw_key = make_key(alpha)

    workspace_delete_by_system(workspace=alpha.workspace, acting_user=None, reason="test")

    error = _refusal(raw_key, caplog)
    assert (error.message, error.reason) == ("Invalid API key.", "workspace deleted")


def test_a_key_created_by_the_system_works(alpha):
    key, raw_key = apikey_create(workspace=alpha.workspace, acting_user=None, name="CI", scopes=["chat"])

    assert apikey_authenticate(raw_key=raw_key) == key


def test_authentication_records_use_at_most_once_a_minute(alpha, monkeypatch, django_assert_num_queries):
    clock = Clock(monkeypatch)
    key, raw_key = make_key(alpha)

    # First use: the lookup (+ the default plan) and one write; within the minute: the lookup
    # (+ the default plan) only.
    with django_assert_num_queries(5):
        apikey_authenticate(raw_key=raw_key, ip="203.0.113.7")
        clock.advance(seconds=59)
        apikey_authenticate(raw_key=raw_key, ip="198.51.100.1")

    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (clock.now - timedelta(seconds=59), "203.0.113.7")

    clock.advance(seconds=2)
    with django_assert_num_queries(3):
        apikey_authenticate(raw_key=raw_key, ip="198.51.100.1")

    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (clock.now, "198.51.100.1")


def test_the_use_update_is_conditional(alpha, monkeypatch):
    """Two requests that both loaded the key before either recorded its use write once."""
    clock = Clock(monkeypatch)
    key, raw_key = make_key(alpha)
    apikey_authenticate(raw_key=raw_key, ip="203.0.113.7")
    stale = ApiKey.objects.get(pk=key.pk)
    clock.advance(minutes=2)
    apikey_authenticate(raw_key=raw_key, ip="203.0.113.8")
    written_at = clock.now

    clock.advance(seconds=1)
    stale.last_used_at = written_at - timedelta(minutes=2)  # what the slower request loaded
    _touch(stale, now=clock.now, ip="203.0.113.9")

    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (written_at, "203.0.113.8")


def test_an_address_that_is_not_an_ip_is_not_stored(alpha):
    key, raw_key = make_key(alpha)

    apikey_authenticate(raw_key=raw_key, ip="unix:/run/app.sock")

    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip is None


# ---------------------------------------------------------------------------- scopes and models


def test_scopes(alpha):
    key, _ = make_key(alpha, scopes=[Scope.CHAT, Scope.EMBEDDINGS])

    assert key.has_scope("chat")
    assert key.has_scope("embeddings")
    assert not key.has_scope("images")
    assert not key.has_scope("platform_read")
    apikey_check_scope(key=key, scope="chat")
    with pytest.raises(ApiKeyScopeDenied) as excinfo:
        apikey_check_scope(key=key, scope="audio")
    assert (excinfo.value.status_code, excinfo.value.scope) == (403, "audio")


def test_platform_write_includes_platform_read(alpha):
    key, _ = make_key(alpha, scopes=[Scope.PLATFORM_WRITE])

    assert key.has_scope("platform_write")
    assert key.has_scope("platform_read")
    assert not key.has_scope("chat")
    reader, _ = make_key(alpha, scopes=[Scope.PLATFORM_READ])
    assert not reader.has_scope("platform_write")


def test_allowed_models(alpha, catalog):
    limited, _ = make_key(alpha, allowed_models=["mock-chat"])
    everything, _ = make_key(alpha)

    assert limited.allows_model("mock-chat")
    assert not limited.allows_model("mock-embed")
    assert everything.allows_model("mock-embed")
    assert everything.allows_model("gpt-4o")
    apikey_check_model(key=limited, model_id="mock-chat")
    with pytest.raises(ApiKeyModelDenied) as excinfo:
        apikey_check_model(key=limited, model_id="gpt-4o")
    assert (excinfo.value.status_code, excinfo.value.code) == (403, "model_not_allowed")


# ---------------------------------------------------------------------------- revoke


def test_revoke_is_audited_once_and_idempotent(alpha):
    key, _ = make_key(alpha)

    apikey_revoke(key=key, acting_user=alpha.owner)
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    apikey_revoke(key=ApiKey.objects.get(pk=key.pk), acting_user=alpha.admin)
    apikey_revoke(key=key, acting_user=alpha.admin)  # a stale instance

    key.refresh_from_db()
    assert (key.revoked_at, key.revoked_by) == (first, alpha.owner)
    assert not key.is_active
    assert key.state == "revoked"
    event = AuditEvent.objects.get(action="apikey.revoke")
    assert (event.actor, event.workspace, event.metadata["prefix"]) == (alpha.owner, alpha.workspace, key.prefix)


@pytest.mark.parametrize("who", ["member", "outsider", "other_owner"])
def test_only_owners_and_admins_of_the_workspace_revoke(alpha, beta, outsider, who):
    key, raw_key = make_key(alpha)
    user = {"member": alpha.member, "outsider": outsider, "other_owner": beta.owner}[who]

    with pytest.raises(WorkspacePermissionDenied):
        apikey_revoke(key=key, acting_user=user)

    key.refresh_from_db()
    assert key.revoked_at is None
    assert apikey_authenticate(raw_key=raw_key) == key


def test_as_staff_needs_a_staff_member(alpha):
    key, _ = make_key(alpha)

    with pytest.raises(ApiKeyError) as excinfo:
        apikey_revoke(key=key, acting_user=alpha.owner, as_staff=True)

    assert excinfo.value.status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_state_and_active_queryset(alpha, monkeypatch):
    clock = Clock(monkeypatch)
    active, _ = make_key(alpha, name="active")
    expiring, _ = make_key(alpha, name="expiring", expires_at=clock.now + timedelta(hours=1))
    revoked, _ = make_key(alpha, name="revoked")
    apikey_revoke(key=revoked, acting_user=alpha.owner)

    clock.advance(hours=1)

    assert [k.state for k in (active, expiring, revoked)] == ["active", "expired", "revoked"]
    assert list(ApiKey.objects.active().values_list("name", flat=True)) == ["active"]

"""`manage.py apikey`: create (prints the key once), list and revoke, acting as the system,
with clear refusals for mistyped commands."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.apikeys.exceptions import ApiKeyInvalid
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_authenticate, apikey_revoke, hash_key
from apps.audit.models import AuditEvent
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_delete_by_system
from tests.apikeys.conftest import assert_stored_nowhere, make_key
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def run(*args: Any) -> list[str]:
    out = io.StringIO()
    call_command("apikey", *[str(a) for a in args], stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def acme() -> Workspace:
    return WorkspaceFactory.create(name="Acme", slug="acme")


# ---------------------------------------------------------------------------- create


def test_create_prints_the_key_once_then_a_summary(acme):
    lines = run("create", "--workspace", "acme", "--name", "CI bot")

    assert len(lines) == 2
    raw_key, summary = lines
    key = ApiKey.objects.get(workspace=acme)
    assert key.key_hash == hash_key(raw_key)
    assert (key.name, key.scopes, key.created_by, key.expires_at) == ("CI bot", ["chat"], None, None)
    assert summary == (
        f"apikey create: key {key.prefix}… “CI bot” (#{key.pk}) for acme (scopes chat; expires never; "
        "models all). It is shown only this once: store it now."
    )
    assert apikey_authenticate(raw_key=raw_key) == key
    assert_stored_nowhere(raw_key)


def test_create_with_every_option(acme, catalog):
    lines = run(
        "create",
        "--workspace",
        "acme",
        "--name",
        "Embedder",
        "--scopes",
        "embeddings, chat",
        "--expires-days",
        "30",
        "--daily-cap",
        "2.5",
        "--monthly-cap",
        "1_000",
        "--models",
        "mock-embed,mock-chat",
        "--rpm",
        "60",
        "--tpm",
        "50000",
    )

    key = ApiKey.objects.get(workspace=acme)
    assert key.scopes == ["chat", "embeddings"]
    assert key.expires_at is not None
    assert abs(key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert (key.daily_cap_units, key.monthly_cap_units) == (25_000, 10_000_000)
    assert key.allowed_models == ["mock-embed", "mock-chat"]
    assert (key.rpm_limit, key.tpm_limit) == (60, 50_000)
    assert "daily cap 2.5 credits; monthly cap 1,000 credits; models mock-embed, mock-chat" in lines[1]


def test_create_is_audited_as_the_system(acme):
    run("create", "--workspace", "acme", "--name", "CI bot")

    event = AuditEvent.objects.get(action="apikey.create")
    assert (event.actor, event.workspace, event.metadata["name"]) == (None, acme, "CI bot")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "nope", "--name", "x"], "No workspace with the slug 'nope'."),
        (["--workspace", "acme", "--name", " "], "Give the key a name."),
        (["--workspace", "acme", "--name", "x", "--scopes", "chat,root"], "Unknown scope: root."),
        (["--workspace", "acme", "--name", "x", "--scopes", ","], "Choose at least one scope."),
        (["--workspace", "acme", "--name", "x", "--expires-days", "0"], "--expires-days must be at least 1."),
        (["--workspace", "acme", "--name", "x", "--daily-cap", "0"], "--daily-cap must be greater than zero."),
        (["--workspace", "acme", "--name", "x", "--monthly-cap", "1.00001"], "at most 4 decimal places"),
        (["--workspace", "acme", "--name", "x", "--daily-cap", "ten"], "is not an amount of credits"),
        (["--workspace", "acme", "--name", "x", "--models", "nope"], "Unknown model: nope."),
        (["--workspace", "acme", "--name", "x", "--rpm", "0"], "requests per minute"),
    ],
)
def test_create_refuses_bad_options_and_creates_nothing(acme, args, message):
    with pytest.raises(CommandError, match=message):
        run("create", *args)

    assert not ApiKey.objects.exists()


def test_create_refuses_a_deleted_workspace(acme):
    workspace_delete_by_system(workspace=acme, acting_user=None, reason="test")

    with pytest.raises(CommandError, match="is deleted"):
        run("create", "--workspace", "acme", "--name", "x")


# ---------------------------------------------------------------------------- list


def test_list_shows_each_key_with_its_state(acme, alpha):
    run("create", "--workspace", "acme", "--name", "first", "--scopes", "chat,images")
    run("create", "--workspace", "acme", "--name", "second")
    second = ApiKey.objects.get(name="second")
    apikey_revoke(key=second, acting_user=None)
    make_key(alpha, name="not acme's")

    lines = run("list", "--workspace", "acme")

    first = ApiKey.objects.get(name="first")
    assert lines[0] == "apikey list: acme: 2 key(s), 1 active."
    assert len(lines) == 3
    assert lines[1].startswith(f"  {second.prefix}…  second")
    assert lines[1].endswith("last used never  revoked")
    assert lines[2].startswith(f"  {first.prefix}…  first")
    assert "chat,images" in lines[2]
    assert lines[2].endswith("active")


def test_list_of_a_workspace_without_keys(acme):
    assert run("list", "--workspace", "acme") == ["apikey list: acme: 0 key(s), 0 active."]


# ---------------------------------------------------------------------------- revoke


def test_revoke_by_prefix(acme):
    raw_key = run("create", "--workspace", "acme", "--name", "CI bot")[0]
    key = ApiKey.objects.get()

    lines = run("revoke", "--prefix", key.prefix)

    assert lines == [f"apikey revoke: revoked {key.prefix}… “CI bot” of acme."]
    key.refresh_from_db()
    assert (key.revoked_at is not None, key.revoked_by) == (True, None)
    event = AuditEvent.objects.get(action="apikey.revoke")
    assert (event.actor, event.workspace) == (None, acme)
    with pytest.raises(ApiKeyInvalid):
        apikey_authenticate(raw_key=raw_key)


def test_revoke_by_id_and_again(acme):
    run("create", "--workspace", "acme", "--name", "CI bot")
    key = ApiKey.objects.get()
    run("revoke", "--id", key.pk)

    lines = run("revoke", "--prefix", f"{key.prefix}…")

    assert len(lines) == 1
    assert "was already revoked" in lines[0]
    assert lines[0].endswith("nothing changed.")
    assert AuditEvent.objects.filter(action="apikey.revoke").count() == 1


@pytest.mark.parametrize("args", [["--prefix", "ak_nothere"], ["--id", "999999"]])
def test_revoke_an_unknown_key(acme, args):
    with pytest.raises(CommandError, match="No API key with the"):
        run("revoke", *args)


def test_revoke_needs_exactly_one_of_prefix_and_id(acme):
    with pytest.raises(CommandError):
        run("revoke")
    with pytest.raises(CommandError):
        run("revoke", "--prefix", "ak_x", "--id", "1")

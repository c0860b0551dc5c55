"""Helpers for the API key tests: keys made through the service, the default model catalog,
and a scan proving a raw key was stored nowhere."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.sessions.backends.base import SessionBase

from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.services import apikey_create
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from tests.conftest import Team


def make_key(team: Team, *, by: str = "owner", **fields: Any) -> tuple[ApiKey, str]:
    """A key of `team`'s workspace created through the service by one of its people."""
    fields.setdefault("name", "Test key")
    fields.setdefault("scopes", [Scope.CHAT])
    return apikey_create(workspace=team.workspace, acting_user=getattr(team, by), **fields)


def assert_stored_nowhere(raw_key: str, session: SessionBase | None = None) -> None:
    """No row of any model (the audit log included) holds the raw key or its secret part,
    nor does the session."""
    secret = raw_key[len("ak_") :]
    for model in apps.get_models():
        for row in model._default_manager.values():
            text = str(row)
            assert raw_key not in text, f"{model._meta.label} stores the raw key"
            assert secret not in text, f"{model._meta.label} stores the key's secret part"
    if session is not None:
        session.load()
        assert raw_key not in str(dict(session.items()))


@pytest.fixture
def catalog(db: Any) -> None:
    """The default model catalog (seeded by a migration; a flushed database lost it)."""
    catalog_seed_defaults(Provider, AIModel, ModelFallback)

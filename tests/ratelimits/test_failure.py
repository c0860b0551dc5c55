"""When the storage is gone, requests go through: rate limiting never takes a request down."""

from __future__ import annotations

import logging
import socket

import pytest
from pytest_django import Settings

from apps.ratelimits.services import ratelimit_check, ratelimit_enforce, ratelimit_record_tokens
from tests.factories import WorkspaceFactory
from tests.ratelimits.conftest import api_key, override

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings: Settings) -> str:
    """REDIS_URL pointing at a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    return settings.REDIS_URL


def test_unreachable_redis_fails_open_with_one_warning(redis_down, caplog):
    workspace = WorkspaceFactory.create()
    override(workspace, key_rpm=1, key_tpm=10)
    key = api_key()

    with caplog.at_level(logging.WARNING, logger="apps.ratelimits"):
        decisions = [ratelimit_check(workspace=workspace, api_key=key, tokens=100) for _ in range(3)]
        ratelimit_record_tokens(workspace=workspace, api_key=key, tokens=10**6)
        enforced = ratelimit_enforce(workspace=workspace, api_key=key)

    assert all(d.allowed and d.degraded for d in [*decisions, enforced])
    assert decisions[0].headers() == {}
    # Paused after the first failure: one warning, not one per request.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Rate limit storage unavailable" in warnings[0].getMessage()


def test_a_reachable_storage_is_not_degraded():
    workspace = WorkspaceFactory.create()
    override(workspace, key_rpm=1)

    decision = ratelimit_check(workspace=workspace, api_key=api_key())

    assert decision.allowed is True
    assert decision.degraded is False

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_django import Settings

from apps.ratelimits.models import WorkspaceRateLimit
from apps.ratelimits.storage import ratelimit_storage_forget
from apps.workspaces.models import Workspace

_key_ids = itertools.count(1)


class FakeTime:
    """Stands in for the `time` module inside `limits.storage.memory`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """In-process windows on a clock the test moves, 10 s into a minute: the memory storage
    reads `time.time()` through its module's `time`, so nothing sleeps."""
    settings.REDIS_URL = ""
    fake = FakeTime(1_800_000_010.0)
    monkeypatch.setattr("limits.storage.memory.time", fake)
    ratelimit_storage_forget()
    return fake


def api_key(*, rpm_limit: int | None = None, tpm_limit: int | None = None) -> Any:
    """What the rate limiter needs from an API key: a pk and optional own limits."""
    return SimpleNamespace(pk=f"k{next(_key_ids)}", rpm_limit=rpm_limit, tpm_limit=tpm_limit)


def override(workspace: Workspace, **limits: int | None) -> WorkspaceRateLimit:
    row, _ = WorkspaceRateLimit.objects.update_or_create(workspace=workspace, defaults=limits)
    return row

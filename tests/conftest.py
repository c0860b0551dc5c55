"""Shared fixtures: two workspaces (Alice's and Bob's) with an owner, an admin, a member and an
outsider, so every view test can check that another workspace's ids answer 404."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django import Settings

from apps.accounts.models import User
from apps.ratelimits.storage import ratelimit_storage_forget, with_storage
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from tests.fakes.upstream import FakeUpstream


@dataclass
class Team:
    workspace: Workspace
    owner: User
    admin: User
    member: User
    owner_membership: Membership
    admin_membership: Membership
    member_membership: Membership


def _team(name: str, prefix: str) -> Team:
    workspace = WorkspaceFactory.create(name=name)
    owner = UserFactory.create(email=f"{prefix}-owner@example.com")
    admin = UserFactory.create(email=f"{prefix}-admin@example.com")
    member = UserFactory.create(email=f"{prefix}-member@example.com")
    return Team(
        workspace=workspace,
        owner=owner,
        admin=admin,
        member=member,
        owner_membership=MembershipFactory.create(workspace=workspace, user=owner, role=Role.OWNER),
        admin_membership=MembershipFactory.create(workspace=workspace, user=admin, role=Role.ADMIN),
        member_membership=MembershipFactory.create(workspace=workspace, user=member, role=Role.MEMBER),
    )


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Empty this run's cache. On Redis only the run's own keys (its KEY_PREFIX): `clear()`
    would flush the whole database, under parallel test processes and the broker's queues."""
    prefix = cache.key_prefix
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if not prefix or client is None:
        cache.clear()
        return
    redis = client(write=True)
    keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_windows() -> Iterator[None]:
    """Every test starts with empty windows (on Redis: only this run's prefix) and no
    fail-open pause left by another test."""
    ratelimit_storage_forget()
    with_storage(lambda storage: storage.reset())
    ratelimit_storage_forget()
    yield
    ratelimit_storage_forget()


@pytest.fixture(autouse=True)
def _media_root(settings: Settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def alpha(db: None) -> Team:
    """Alice's workspace: owner, admin and member."""
    return _team("Alpha", "alpha")


@pytest.fixture
def beta(db: None) -> Team:
    """Bob's workspace: the other tenant. Its ids must answer 404 to Alpha's people."""
    return _team("Beta", "beta")


@pytest.fixture
def outsider(db: None) -> User:
    """A signed-up user who belongs to no shared workspace."""
    return UserFactory.create(email="outsider@example.com")


class ClientFor(Protocol):
    """The `client_for` fixture: a fresh client signed in as `user`, `workspace` current."""

    def __call__(self, user: User, workspace: Workspace | None = None) -> Client: ...


def login(client: Client, user: User, workspace: Workspace | None = None) -> Client:
    client.force_login(user)
    if workspace is not None:
        session = client.session
        session[SESSION_KEY] = workspace.pk
        session.save()
    return client


@pytest.fixture
def client_for() -> ClientFor:
    """`client_for(user, workspace)` returns a fresh client signed in with that workspace current."""

    def make(user: User, workspace: Workspace | None = None) -> Client:
        return login(Client(), user, workspace)

    return make


# The local fake AI provider (OpenAI, Anthropic, Gemini, Ollama wire formats), one per module.


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The module's fake upstream, with this test's requests only."""
    upstream_server.requests.clear()
    upstream_server.disconnects.clear()
    upstream_server.script.clear()
    yield upstream_server
    # A response stream a test abandoned (an error mid-stream, a provider SDK that keeps it) is
    # freed here, at a safe point: freed later by a garbage collection that happens to run
    # inside httpcore's connection-pool lock, its close() waits for that same lock for ever.
    # What survives is then frozen (never scanned again, never collected: it was alive here),
    # so the next test's collection looks only at what that test made: with litellm and
    # the provider SDKs loaded a full collection takes about a second, this a few milliseconds.
    gc.collect()
    gc.freeze()

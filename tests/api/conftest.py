"""Fixtures for the developer API: a funded workspace with an API key, the official `openai`
SDK talking to the real ASGI application in-process (httpx's ASGI transport), and the catalog
seeded again (transactional tests flush the seeded rows)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgiref.sync import async_to_sync

from aikeedo.asgi import application
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_create
from apps.credits.amounts import to_credits
from apps.credits.rates import rate_cards_seed_defaults
from apps.credits.services import credits_grant
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from apps.workspaces.models import Workspace
from tests.conftest import Team

if TYPE_CHECKING:
    import openai

FUNDS = 10_000_000
ALL_SCOPES = ["chat", "embeddings", "images", "audio", "platform_read", "platform_write"]


@dataclass
class Keyed:
    team: Team
    key: ApiKey
    raw: str

    @property
    def workspace(self) -> Workspace:
        return self.team.workspace


@pytest.fixture
def catalog(db: Any) -> None:
    catalog_seed_defaults(Provider, AIModel, ModelFallback)
    rate_cards_seed_defaults()
    provider = Provider.objects.get(kind="mock")
    provider.options = {"latency_ms": 0}
    provider.save()


def fund(workspace: Workspace, units: int = FUNDS, key: str = "fund") -> None:
    credits_grant(workspace=workspace, amount=to_credits(units), source="purchased", idempotency_key=key)


def make_key(team: Team, *, scopes: list[str] | None = None, **kwargs: Any) -> tuple[ApiKey, str]:
    return apikey_create(
        workspace=team.workspace, acting_user=team.owner, name="Test key", scopes=scopes or ALL_SCOPES, **kwargs
    )


@pytest.fixture
def keyed(alpha: Team, catalog: None) -> Keyed:
    fund(alpha.workspace)
    key, raw = make_key(alpha)
    return Keyed(alpha, key, raw)


def asgi_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver", **kwargs)


def sdk(raw_key: str) -> Any:
    """The official AsyncOpenAI client, pointed at the app; no retries (tests see every error)."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        api_key=raw_key, base_url="http://testserver/v1", max_retries=0, http_client=asgi_client(timeout=30)
    )


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return async_to_sync(scenario)()


def openai_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The `error` of an httpx response that is JSON in OpenAI's shape with `status`."""
    assert response.status_code == status, response.content[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def sdk_error(exc: openai.APIError) -> dict[str, Any]:
    """The `error` object an `openai` SDK exception carries (the SDK types its `body` as `object`)."""
    assert isinstance(exc.body, dict), exc.body
    return exc.body


def platform_error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The body of a Django test response that is JSON in the platform API's shape with `status`."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert {"detail", "code", "param"} <= set(body) <= {"detail", "code", "param", "errors"}
    assert body["detail"]
    assert isinstance(body["code"], str)
    if code is not None:
        assert body["code"] == code
    if param is not None:
        assert body["param"] == param
    return body

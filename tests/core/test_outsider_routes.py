"""Every URL pattern and every WebSocket route has an outsider case: a test, marked
`@pytest.mark.outsider("<route>", …)`, showing that someone outside the workspace (another
tenant, a stranger, an anonymous caller or a revoked key) gets nothing from it.

Routes are named `namespace:name` for URLs and by their path for WebSocket routes
(`ws/chat/<int:conversation_id>/`). The test imports every test module, collects the routes
named by `outsider` markers, and fails when a route has none, or when a marker names a route
that does not exist. A handful of routes serve nothing that belongs to anyone: they are listed in
`PUBLIC` with the reason.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

import tests
from aikeedo.routing import websocket_urlpatterns

# Routes with no tenant data behind them.
PUBLIC = {
    "home": "the landing page",
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, no data",
    "billing:pricing": "the public price list",
    "openai:not_found": "the /v1 catch-all that answers 404 for unknown routes",
    "api:schema": "the public OpenAPI document",
    "api:docs": "the public API reference page",
}

# Third-party route sets with their own test suites; ours test the pieces we configure
# (sign-in throttling, social providers, the admin registry and its staff-only access).
SKIPPED_NAMESPACES = {"admin"}
SKIPPED_PREFIXES = ("accounts/",)  # allauth's flows


def _walk(patterns: list[URLPattern | URLResolver], prefix: str = "", namespace: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace in SKIPPED_NAMESPACES or route.startswith(SKIPPED_PREFIXES):
                continue
            inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
            yield from _walk(pattern.url_patterns, route, inner)
        elif pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name
        else:
            pytest.fail(f"URL pattern {route!r} has no name: name it so it can have an outsider case.")


def url_routes() -> set[str]:
    return set(_walk(get_resolver().url_patterns))


def websocket_routes() -> set[str]:
    return {str(pattern.pattern) for pattern in websocket_urlpatterns}


def _test_modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("test_") and info.name != __name__:
            yield importlib.import_module(info.name)


def _marks(obj: object) -> list[pytest.Mark]:
    marks = getattr(obj, "pytestmark", [])
    return marks if isinstance(marks, list) else [marks]


def covered_routes() -> dict[str, list[str]]:
    """Route → the tests whose `outsider` marker names it."""
    covered: dict[str, list[str]] = {}

    def add(marks: list[pytest.Mark], where: str) -> None:
        for mark in marks:
            if mark.name == "outsider":
                for route in mark.args:
                    covered.setdefault(route, []).append(where)

    for module in _test_modules():
        add(_marks(module), module.__name__)
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and name.startswith("test_"):
                add(_marks(obj), f"{module.__name__}::{name}")
            elif inspect.isclass(obj) and name.startswith("Test"):
                add(_marks(obj), f"{module.__name__}::{name}")
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and attr.startswith("test_"):
                        add(_marks(member), f"{module.__name__}::{name}::{attr}")
    return covered


@pytest.fixture(scope="module")
def covered() -> dict[str, list[str]]:
    return covered_routes()


def test_every_url_route_has_an_outsider_case(covered):
    missing = sorted(url_routes() - set(covered) - set(PUBLIC))
    assert not missing, f"URL routes without an outsider case (mark one with @pytest.mark.outsider): {missing}"


def test_every_websocket_route_has_an_outsider_case(covered):
    missing = sorted(websocket_routes() - set(covered))
    assert not missing, f"WebSocket routes without an outsider case: {missing}"


def test_outsider_markers_name_existing_routes(covered):
    known = url_routes() | websocket_routes()
    unknown = {route: where for route, where in covered.items() if route not in known}
    assert not unknown, f"outsider markers name routes that do not exist: {unknown}"


def test_public_routes_exist_and_have_no_outsider_case(covered):
    routes = url_routes()
    assert set(PUBLIC) <= routes
    assert not set(PUBLIC) & set(covered), "a route with an outsider case is not public: drop it from PUBLIC"

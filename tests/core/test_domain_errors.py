"""Every domain error, on every surface, is the refusal it says it is: its own 4xx, code and
message under `/v1` (OpenAI's shape), under `/api/v1` (the platform's), on a page, and in a
socket frame — never a 500.

The walk covers every `DomainError` subclass of every app (all their modules are imported
first), so a class is checked the day it is added. A class that cannot be built from one
message needs an entry in `EXAMPLES`, or the walk fails for it."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path
from django.utils.html import escape
from rest_framework.request import Request

import apps
from aikeedo.urls import urlpatterns as site_urlpatterns
from apps.api.openai import openai_view
from apps.api.platform import platform_exception_handler
from apps.apikeys.exceptions import ApiKeyCapReached
from apps.core.errors import DomainError, domain_error_classes
from apps.core.middleware import DomainErrorMiddleware
from apps.core.realtime import error_frame
from apps.credits.amounts import SCALE
from apps.credits.exceptions import InsufficientCredits, SpendingCapReached
from apps.documents.exceptions import VersionConflict
from apps.presets.exceptions import PresetValuesInvalid
from apps.ratelimits.decisions import RateLimitDecision, WindowState
from apps.ratelimits.exceptions import RateLimited


def _import_every_app_module() -> None:
    for module in pkgutil.walk_packages(apps.__path__, f"{apps.__name__}."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)


_import_every_app_module()

MESSAGE = "Refused for a test: <not markup>."
# The error roots of the apps (by class name: the module may move); each must be a DomainError.
ROOTS = {
    "AccountError",
    "AmountError",
    "ApiKeyError",
    "AudioError",
    "BillingError",
    "ChatError",
    "ChatStreamError",
    "CodeError",
    "CreditsError",
    "GenerationRefused",
    "MediaError",
    "RateLimited",
    "VoiceSampleError",
    "WorkspaceError",
}
_WINDOW = WindowState(subject="key", kind="requests", limit=2, remaining=0, reset_seconds=7)
_CAP = {"cap": "daily", "limit_units": 10 * SCALE, "spent_units": 9 * SCALE, "requested_units": 2 * SCALE}
# The classes whose constructor does not take one message.
EXAMPLES: dict[type[DomainError], Callable[[], DomainError]] = {
    InsufficientCredits: lambda: InsufficientCredits(available_units=SCALE, requested_units=2 * SCALE),
    SpendingCapReached: lambda: SpendingCapReached(**_CAP),
    ApiKeyCapReached: lambda: ApiKeyCapReached(**_CAP),
    VersionConflict: lambda: VersionConflict(current_version=3, base_version=2),
    PresetValuesInvalid: lambda: PresetValuesInvalid({"topic": "This is required."}),
    RateLimited: lambda: RateLimited(
        RateLimitDecision(allowed=False, retry_after=7, exceeded=_WINDOW, windows=(_WINDOW,))
    ),
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


CLASSES = sorted(domain_error_classes(), key=_name)
BY_NAME = {_name(cls): cls for cls in CLASSES}


def build(cls: type[DomainError]) -> DomainError:
    if cls in EXAMPLES:
        return EXAMPLES[cls]()
    try:
        inspect.signature(cls).bind(MESSAGE)
    except TypeError:
        pytest.fail(f"{_name(cls)} cannot be built from one message: add an example to EXAMPLES")
    return cls(MESSAGE)


def raise_domain_error(request: HttpRequest, name: str) -> HttpResponseBase:
    raise build(BY_NAME[name])


# This module is the URLconf of the page tests: the site's URLs (the layout links to them) and
# a page that raises the domain error it names.
urlpatterns = [path("domain-error/<str:name>/", raise_domain_error), *site_urlpatterns]


def assert_headers(response: HttpResponseBase, exc: DomainError) -> None:
    assert exc.headers == {} or all(response[name] == value for name, value in exc.headers.items())


def test_every_app_error_root_is_a_domain_error() -> None:
    missing = ROOTS - {cls.__name__ for cls in CLASSES}
    assert not missing, f"not DomainErrors: {sorted(missing)}"


def test_the_walk_finds_the_subclasses_of_the_roots() -> None:
    assert {InsufficientCredits, SpendingCapReached, ApiKeyCapReached, RateLimited} <= set(CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_declares_its_own_code_and_a_4xx_status(cls: type[DomainError]) -> None:
    below_base = cls.__mro__[: cls.__mro__.index(DomainError)]
    assert any("code" in vars(klass) for klass in below_base), f"{_name(cls)} has only DomainError's code"
    assert 400 <= cls.status_code < 500
    exc = build(cls)
    assert 400 <= exc.status_code < 500
    assert exc.code
    assert exc.message


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_v1_answers_its_status_in_openais_shape(cls: type[DomainError], rf: RequestFactory) -> None:
    exc = build(cls)

    @openai_view(("POST",))
    async def view(request: HttpRequest) -> HttpResponseBase:
        raise exc

    response = async_to_sync(view)(rf.post("/v1/chat/completions"))
    assert isinstance(response, JsonResponse)
    assert response.status_code == exc.status_code
    error = json.loads(response.content)["error"]
    assert (error["message"], error["code"], error["param"]) == (exc.message, exc.code, exc.param)
    assert_headers(response, exc)


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_platform_api_answers_its_status_in_the_platform_shape(cls: type[DomainError], rf: RequestFactory) -> None:
    exc = build(cls)
    response = platform_exception_handler(exc, {"request": Request(rf.get("/api/v1/credits/")), "view": None})
    assert response.status_code == exc.status_code
    body: dict[str, Any] = json.loads(response.content)
    assert (body["detail"], body["code"], body["param"]) == (exc.message, exc.code, exc.param)
    assert_headers(response, exc)


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_a_page_answers_its_status_with_its_message(cls: type[DomainError], client: Client) -> None:
    response = client.get(f"/domain-error/{_name(cls)}/")
    exc = build(cls)
    assert response.status_code == exc.status_code
    assert response["Content-Type"].startswith("text/html")
    assert escape(exc.message) in response.content.decode()
    assert_headers(response, exc)


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_a_socket_gets_its_code_and_message(cls: type[DomainError]) -> None:
    exc = build(cls)
    assert error_frame(exc) == {"type": "error", "message": exc.message, "code": exc.code}


@pytest.mark.parametrize("where", ["/v1/chat/completions", "/api/v1/credits/"])
def test_the_pages_middleware_leaves_the_apis_their_json(where: str, rf: RequestFactory) -> None:
    middleware = DomainErrorMiddleware(lambda request: HttpResponse())
    assert middleware.process_exception(rf.get(where), build(RateLimited)) is None


def test_the_pages_middleware_leaves_other_exceptions_to_django(rf: RequestFactory) -> None:
    middleware = DomainErrorMiddleware(lambda request: HttpResponse())
    assert middleware.process_exception(rf.get("/studio/images/"), RuntimeError("a bug")) is None

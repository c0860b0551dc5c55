"""Errors under `/v1/` and `/api/` answered as JSON in the API's shape, whatever produced them.

The views render their own errors (`openai_view`, `platform_exception_handler`); this is for
what happens around them:

- a body larger than the API reads (by its Content-Length: /v1's JSON limit, Django's
  DATA_UPLOAD_MAX_MEMORY_SIZE under /api) is a 413 before anything reads it — Django would
  answer its HTML 400 (`RequestDataTooBig`). Multipart bodies are left to the views: their
  files have their own limits (the plan's upload size, 413 too);
- an exception that escapes a view (a request error raised while reading the body, a bug) is
  answered in the shape — a bug as a 500, logged with its traceback;
- an error response that is not JSON (Django's own 400/403/404 pages, a CSRF failure, the
  debug pages with DEBUG on, an empty 400) is replaced by the same status in the shape.

Registered right after `RequestContextMiddleware`, so its answers carry the request id too.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponseBase

from apps.api.errors import (
    SERVER_ERROR_MESSAGE,
    ApiError,
    Surface,
    api_error_for,
    body_limit,
    body_too_large,
    surface_of,
    unexpected_error,
)

# Headers of a replaced error response that still matter to the client.
KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow", "Vary")


def unknown_endpoint(request: HttpRequest) -> ApiError:
    return ApiError(404, f"Unknown endpoint: {request.method} {request.path}", code="unknown_url")


def generic_error(request: HttpRequest, status: int) -> ApiError:
    """The error for a bare status (a response whose body said nothing we can reuse)."""
    if status == 404:
        return unknown_endpoint(request)
    if status == 400:
        return ApiError(400, "The request is malformed.", code="bad_request")
    if status == 500:
        return ApiError(500, SERVER_ERROR_MESSAGE, code="server_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return ApiError(status, f"{phrase}.")


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        surface = surface_of(request.path_info)
        if surface is None:
            return self.get_response(request)
        too_large = _too_large(request, surface)
        if too_large is not None:
            return too_large.response(surface)
        return _as_json(request, self.get_response(request), surface)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        surface = surface_of(request.path_info)
        if surface is None:
            return None
        error = api_error_for(exception) or unexpected_error(request, exception)
        return error.response(surface)


def _too_large(request: HttpRequest, surface: Surface) -> ApiError | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = body_limit(surface)
    if length <= limit or request.content_type == "multipart/form-data":
        return None
    return body_too_large(limit)


def _as_json(request: HttpRequest, response: HttpResponseBase, surface: Surface) -> HttpResponseBase:
    if response.status_code < 400 or response.streaming:
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    replaced = generic_error(request, response.status_code).response(surface)
    for name in KEPT_HEADERS:
        if response.has_header(name):
            replaced[name] = response[name]
    return replaced

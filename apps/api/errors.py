"""Errors of both APIs, each surface in its one JSON shape.

`/v1/…` (OpenAI-compatible), OpenAI's shape:

    {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}

`/api/…` (the platform API), DRF's `detail` with a stable code and the field it is about:

    {"detail": "...", "code": "...", "param": "..." | null, "errors": {"field": ["..."]}}

(`errors` only on validation errors: every field's messages, by dotted path.)

Every refusal either API can give maps to an `ApiError` here, so bad input is always a 4xx
with a reason, never a 500: a `DomainError` (any app's refusal) carries its own status, code,
message, param and headers (`domain_error`), Django's request errors get theirs from
`request_error_for`, and a provider that failed is a 503 (`api_error_for`). Each surface
renders it in one place: `ApiError.response()` for `/v1`, `platform_response()` for `/api`
(which adds the error's `details()`). What reaches them unexpected is logged with its traceback
and answered as a 500 in the same shape (`unexpected_error`). `surface_of(path)` says which
surface a path belongs to, for the pieces that answer outside the views (`apps.api.middleware`,
`apps.api.handlers`)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from django.conf import settings
from django.core import signals
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions as drf_exceptions

from apps.api.serializers import first_error
from apps.core.errors import DomainError
from apps.core.middleware import OPENAI_API_ROOT, PLATFORM_API_ROOT, api_root_of
from apps.generation.providers.base import ProviderError
from apps.generation.router import AllProvidersFailed

Surface = Literal["openai", "platform"]
MB = 1024 * 1024
MAX_BODY_BYTES = 8 * MB  # JSON bodies on /v1 (OpenAI's own limit is larger; ours is enough)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. It has been logged."
request_logger = logging.getLogger("django.request")

TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
# The platform shape always has a code: DRF's defaults where DRF has one.
PLATFORM_CODE_FOR_STATUS = {
    400: "invalid",
    401: "not_authenticated",
    402: "insufficient_credits",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    502: "upstream_error",
    503: "unavailable",
    504: "timeout",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        errors: dict[str, list[str]] | None = None,
        details: dict[str, Any] | None = None,
        logged: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or TYPE_FOR_STATUS.get(status, "invalid_request_error")
        self.headers = headers or {}
        self.errors = errors  # every field's messages (validation errors; the platform shape shows them)
        self.details = details or {}  # a domain error's extra fields (the platform shape shows them)
        self.logged = logged  # already logged with its traceback: Django need not log the response again

    def payload(self) -> dict[str, Any]:
        """OpenAI's shape (`/v1`)."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def platform_payload(self) -> dict[str, Any]:
        """The platform API's shape (`/api`)."""
        body: dict[str, Any] = {
            "detail": self.message,
            "code": self.code or PLATFORM_CODE_FOR_STATUS.get(self.status, "error"),
            "param": self.param,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update((name, value) for name, value in self.details.items() if name not in body)
        return body

    def response(self, surface: Surface = "openai") -> JsonResponse:
        body = self.payload() if surface == "openai" else self.platform_payload()
        response = JsonResponse(body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        if self.logged:
            response._has_been_logged = True  # type: ignore[attr-defined]  # see django.utils.log.log_response
        return response


def platform_response(error: ApiError) -> JsonResponse:
    return error.response("platform")


SURFACE_FOR_ROOT: dict[str, Surface] = {OPENAI_API_ROOT: "openai", PLATFORM_API_ROOT: "platform"}


def surface_of(path: str) -> Surface | None:
    """The API a request path belongs to: `/v1…` OpenAI-compatible, `/api…` the platform."""
    root = api_root_of(path)
    return SURFACE_FOR_ROOT[root] if root is not None else None


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than {limit // MB} MB.", code="too_large")


def body_limit(surface: Surface) -> int:
    """The largest body (but multipart uploads, whose files have their own limits) a surface
    reads: /v1's JSON limit, and Django's DATA_UPLOAD_MAX_MEMORY_SIZE under /api."""
    if surface == "openai":
        return MAX_BODY_BYTES
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) or 10 * MB


def request_error_for(exc: BaseException) -> ApiError | None:
    """Django's errors about the request itself (too large, a broken multipart body, too
    many fields), Http404 and PermissionDenied, or None."""
    if isinstance(exc, RequestDataTooBig):  # Django's limit: a body, or the fields of a form
        return body_too_large(body_limit("platform"))
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        what = "files" if isinstance(exc, TooManyFilesSent) else "fields"
        return ApiError(400, f"The request has too many {what}.", code=f"too_many_{what}")
    if isinstance(exc, MultiPartParserError | UnreadablePostError):
        return ApiError(400, f"The multipart body could not be read: {exc}", code="invalid_multipart")
    if isinstance(exc, SuspiciousOperation | BadRequest):
        return ApiError(400, "The request is malformed.", code="bad_request")
    if isinstance(exc, Http404):
        return ApiError(404, str(exc) or "Not found.", code="not_found")
    if isinstance(exc, PermissionDenied):
        return ApiError(403, str(exc) or "You do not have permission to do this.", code="permission_denied")
    return None


def flatten_errors(detail: Any, path: str = "") -> dict[str, list[str]]:
    """A serializer's errors by dotted path: `{"scopes.0": ["…"], "parameters": ["…"]}`."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            out.update(flatten_errors(value, f"{path}.{name}".strip(".") if name else path))
        return out
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        out = {}
        for index, value in enumerate(detail):
            if value:
                out.update(flatten_errors(value, f"{path}.{index}".strip(".") if isinstance(value, dict) else path))
        return out
    messages = [str(item) for item in detail] if isinstance(detail, list) else [str(detail)]
    return {path or "non_field_errors": messages}


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, dict):
        codes = list(codes.values())
    if isinstance(codes, list):
        for item in codes:
            found = _first_code(item)
            if found:
                return found
        return None
    return str(codes) if codes else None


def drf_error(exc: drf_exceptions.APIException) -> ApiError:
    """DRF's exception as an ApiError; a validation error names its first field."""
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{int(exc.wait)}"  # type: ignore[attr-defined]
    if isinstance(exc.detail, dict | list):
        param, message = first_error(exc.detail)
        return ApiError(
            exc.status_code,
            f"{param}: {message}" if param else message,
            code=_first_code(exc.get_codes()) or exc.default_code,
            param=param or None,
            errors=flatten_errors(exc.detail),
            headers=headers,
        )
    code = getattr(exc.detail, "code", None) or exc.default_code
    return ApiError(exc.status_code, str(exc.detail), code=str(code), headers=headers)


def unexpected_error(request: HttpRequest, exc: BaseException) -> ApiError:
    """A bug: logged with its traceback (as Django logs a 500, on `django.request`, and with
    its `got_request_exception` signal for error trackers), answered as a 500 in the API's
    shape. Call it from the `except` block that caught `exc`."""
    request_logger.error(
        "Internal Server Error: %s",
        request.path,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"status_code": 500, "request": request},
    )
    signals.got_request_exception.send(sender=None, request=request)
    return ApiError(500, SERVER_ERROR_MESSAGE, code="server_error", logged=True)


def domain_error(exc: DomainError) -> ApiError:
    """Any app's refusal as the API's error, from what it carries: status, code, message, the
    request field it is about, headers (`Retry-After`…) and, for the platform shape, its details."""
    return ApiError(
        exc.status_code,
        exc.message,
        code=exc.code,
        param=exc.param,
        headers=exc.headers,
        details=exc.details(),
    )


def api_error_for(exc: BaseException) -> ApiError | None:
    """The API error for a domain exception, a provider that failed or a request error, or
    None for an unexpected one (a bug: 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError):
        return domain_error(exc)
    # Not domain errors: the upstream failed, not the caller (503, in the server_error type).
    if isinstance(exc, AllProvidersFailed):
        return ApiError(
            503, "The model is not available right now: every provider failed. Try again shortly.", code="unavailable"
        )
    if isinstance(exc, ProviderError):
        return ApiError(503, "The model failed while answering.", code="upstream_error")
    return request_error_for(exc)

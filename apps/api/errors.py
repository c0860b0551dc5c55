"""Errors of the OpenAI-compatible API, in OpenAI's shape:

    {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}

Every refusal the API can give maps here, so bad input is always a 4xx with a reason, never a
500 (`api_error_for` turns our domain exceptions into the right status and code)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

from apps.apikeys.exceptions import ApiKeyError
from apps.credits.exceptions import CreditsError, InsufficientCredits
from apps.generation.providers.base import ProviderError
from apps.generation.router import AllProvidersFailed
from apps.generation.services import GenerationRefused
from apps.ratelimits.exceptions import RateLimited

TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or TYPE_FOR_STATUS.get(status, "invalid_request_error")
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.payload(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def api_error_for(exc: BaseException) -> ApiError | None:
    """The API error for a domain exception, or None for an unexpected one (a bug: 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ApiKeyError):
        return ApiError(exc.status_code, exc.message, code=exc.code)
    if isinstance(exc, RateLimited):
        return ApiError(429, exc.message, code="rate_limit_exceeded", headers=exc.headers)
    if isinstance(exc, InsufficientCredits):
        return ApiError(402, exc.message, code="insufficient_credits")
    if isinstance(exc, CreditsError):
        # Spending caps of the workspace or member: a quota, like running out of credits.
        return ApiError(402, exc.message, code=getattr(exc, "code", None) or "credits_refused")
    if isinstance(exc, GenerationRefused):
        status = getattr(exc, "status_code", 403)
        return ApiError(status, exc.message, code=getattr(exc, "code", None) or "model_not_available")
    if isinstance(exc, AllProvidersFailed):
        return ApiError(
            503, "The model is not available right now: every provider failed. Try again shortly.", code="unavailable"
        )
    if isinstance(exc, ProviderError):
        return ApiError(503, "The model failed while answering.", code="upstream_error")
    return None

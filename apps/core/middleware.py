from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse

from apps.core import context

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR is the direct peer; deployments behind a proxy set it with the proxy's
    # own middleware (e.g. uvicorn --proxy-headers), so a forged X-Forwarded-For is ignored.
    # A server listening on a unix socket may put a path or nothing here; only addresses are
    # kept, so an audit row never carries a value PostgreSQL's inet column rejects.
    value = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def impersonator_from_session(session: Any) -> int | None:
    """The staff member who started impersonating, from django-hijack's session history (a
    list of user pks as strings, one per nested hijack). The first entry is the person at
    the keyboard; later entries are accounts they passed through."""
    history = session.get("hijack_history")
    if not isinstance(history, list | tuple) or not history:
        return None
    try:
        return int(history[0])
    except (TypeError, ValueError):
        return None


class RequestContextMiddleware:
    """Gives every request an id (kept from a well-formed X-Request-ID header), binds it with
    the client IP to the log context and echoes it back in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        ctx = context.RequestContext(
            request_id=request_id,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
        )
        token = context.set_context(ctx)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, ip=ctx.ip)
        try:
            response = self.get_response(request)
        finally:
            context.reset_context(token)
        response["X-Request-ID"] = request_id
        return response


class RequestUserContextMiddleware:
    """Adds the authenticated user (and an impersonating staff member, when there is one) to
    the log and audit context. Runs after authentication."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context.update_context(impersonator_id=impersonator_from_session(request.session))
            structlog.contextvars.bind_contextvars(user_id=user.pk)
        return self.get_response(request)

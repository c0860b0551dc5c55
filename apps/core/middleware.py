from __future__ import annotations

import functools
import ipaddress
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DataError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from apps.core import context
from apps.core.errors import DomainError

logger = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

# The roots of the two APIs (`apps.api`): their errors are JSON in each API's shape, never pages.
OPENAI_API_ROOT = "/v1"
PLATFORM_API_ROOT = "/api"
# The heading of a refusal's page; other statuses get the generic one.
REFUSED_TITLES = {403: "Not allowed", 404: "Not found", 429: "Too many requests"}


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the one place that decides it (audit log, allauth's rate limits
    and sessions, API keys). REMOTE_ADDR is the direct peer; X-Forwarded-For counts only when
    that peer is a trusted proxy (settings.TRUSTED_PROXIES). Returns a valid IP or None."""
    return forwarded_client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def forwarded_client_ip(peer: str | None, forwarded_for: str | None) -> str | None:
    """Reading `forwarded_for` followed by `peer` as one chain, the right-most address that is
    not a trusted proxy. Each proxy appends the address it received the request from, so entries to the
    right of the last trusted hop were written by proxies we run; everything to the left was
    sent by the client and may be forged.

    A server listening on a unix socket may give a path or nothing as the peer; only addresses
    are kept, so an audit row never carries a value PostgreSQL's inet column rejects. An entry
    that is not an address ends the walk at the proxy that passed it on: the client cannot be
    told apart behind it, and the proxy's address cannot be forged."""
    address = _parse_ip(peer)
    if address is None:
        return None
    trusted = trusted_proxy_networks(tuple(settings.TRUSTED_PROXIES))
    hops = (forwarded_for or "").split(",") if trusted else []
    while hops and any(address in network for network in trusted):
        hop = _parse_ip(hops.pop())
        if hop is None:
            break
        address = hop
    return str(address)


@functools.lru_cache(maxsize=8)
def trusted_proxy_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES entries (addresses or CIDR networks) as networks."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as error:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES: {value!r} is not an IP address or network.") from error
    return tuple(networks)


def _parse_ip(value: str | None) -> IPAddress | None:
    """An address from a peer or X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`
    or `[2001:db8::1]:443`. IPv4-mapped IPv6 addresses (a dual-stack socket) become IPv4, so they
    match IPv4 networks and rate limits."""
    text = (value or "").strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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


def api_root_of(path: str) -> str | None:
    """The API root a request path is under (`/v1` or `/api`), or None for a page."""
    for root in (OPENAI_API_ROOT, PLATFORM_API_ROOT):
        if path == root or path.startswith(f"{root}/"):
            return root
    return None


class DomainErrorMiddleware:
    """A domain error that no view caught, on a page: its message with its own status (a 4xx the
    user can act on, never a 500) and headers (`Retry-After`), in the site's layout. Views that
    show a refusal in their form catch it first; the APIs answer theirs as JSON (`apps.api`), so
    their paths are left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError) or api_root_of(request.path_info) is not None:
            return None
        title = REFUSED_TITLES.get(exception.status_code, "This could not be done")
        response = render(
            request, "errors/refused.html", {"title": title, "message": exception.message}, status=exception.status_code
        )
        for name, value in exception.headers.items():
            response[name] = value
        return response


class RefusedInputMiddleware:
    """Input the database refuses (PostgreSQL: a NUL byte in text, a number out of range, a
    value too long for its column) that a view passed on without a form or serializer (a raw
    parameter used as a lookup or an idempotency key) is a 400, not a 500. Forms and
    serializers check first and say which field is wrong; this is the net under them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DataError):
            return None
        logger.warning("the database refused input on %s %s: %s", request.method, request.path, exception)
        return HttpResponseBadRequest(
            "The request contains a value that cannot be stored (a NUL character, or a value too long "
            "or out of range).",
            content_type="text/plain",
        )


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

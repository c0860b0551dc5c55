"""Absolute links for what leaves the site (emails): which address the site is reached at.

`absolute_url(path)` puts the site's base URL in front of a path. The base is, in order:

1. `settings.SITE_URL` when it is set: the operator said where the site lives (production
   always has one, see `aikeedo/settings/production.py`);
2. the `base` the caller passes: a Celery task carries the base of the request that enqueued it
   (`current_base_url()` at enqueue time), since a worker has no request of its own;
3. the base of the request (or WebSocket) being handled, set by `SiteURLMiddleware` (and by
   `apps.core.realtime.RevocableConsumer` for sockets), so `make run` on any port mails links
   to that port;
4. the domain of the Sites framework (`django.contrib.sites`, editable in the admin) with
   `ACCOUNT_DEFAULT_HTTP_PROTOCOL`: the last resort of scheduled work no request caused.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host

logger = logging.getLogger(__name__)

_request_base: contextvars.ContextVar[str] = contextvars.ContextVar("site_request_base", default="")

_WEBSOCKET_SCHEMES = {"ws": "http", "wss": "https"}


def request_base_url(request: HttpRequest) -> str:
    """`scheme://host[:port]` of an HTTP request, or "" when its Host is not one this site
    serves (never trust a Host header that ALLOWED_HOSTS refuses)."""
    try:
        return f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return ""


def scope_base_url(scope: Mapping[str, Any]) -> str:
    """`scheme://host[:port]` of an ASGI (WebSocket) connection, from its Host header, or "" when
    the host is not one this site serves. Channels does not check the Host as Django does, so
    this does."""
    headers = {name.lower(): value for name, value in scope.get("headers") or []}
    host = headers.get(b"host", b"").decode("latin-1").strip()
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return ""
    scheme = str(scope.get("scheme") or "ws")
    return f"{_WEBSOCKET_SCHEMES.get(scheme, scheme)}://{host}"


def _allowed_hosts() -> list[str]:
    # As Django's `HttpRequest.get_host`: with DEBUG and no ALLOWED_HOSTS, local names only.
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def current_base_url() -> str:
    """The base URL of the request or socket being handled ("" outside one). Pass it to a task
    that sends email, so the links point where the person who caused it is."""
    return _request_base.get()


@contextmanager
def base_url_scope(base: str) -> Iterator[None]:
    """Links built inside use `base` as the current request's (a task running for a request)."""
    token = _request_base.set(base.rstrip("/"))
    try:
        yield
    finally:
        _request_base.reset(token)


def site_base_url(base: str | None = None) -> str:
    """The base URL links are built on, without a trailing slash (see the module docstring)."""
    configured = (settings.SITE_URL or "").strip()
    if configured:
        return configured.rstrip("/")
    chosen = (base or "").strip() or _request_base.get()
    if chosen:
        return chosen.rstrip("/")
    return _sites_framework_base()


def _sites_framework_base() -> str:
    from django.contrib.sites.models import Site

    try:
        domain = Site.objects.get_current().domain  # cached by the Sites framework
    except Site.DoesNotExist:
        logger.warning("no Site %s and no SITE_URL: emailed links are relative", settings.SITE_ID)
        return ""
    return f"{settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL}://{domain}".rstrip("/")


def absolute_url(path: str, base: str | None = None) -> str:
    """`path` (e.g. from `reverse`) as an absolute URL on this site."""
    return site_base_url(base) + (path if path.startswith("/") else f"/{path}")


class SiteURLMiddleware:
    """Remembers the request's base URL for the duration of the request (`current_base_url`),
    for links in emails the request causes. After CommonMiddleware, which checks the Host."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with base_url_scope(request_base_url(request)):
            return self.get_response(request)

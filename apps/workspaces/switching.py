"""Where to land after switching workspace: the same page when it names no object, else the
nearest list page (an object of the old workspace would be a 404 in the new one)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme

# url name -> page to use instead when the URL names an object of the old workspace.
FALLBACKS: dict[str, str] = {}


def register_fallback(url_name: str, fallback: str) -> None:
    FALLBACKS[url_name] = fallback


def switch_target(next_url: str | None, *, allowed_hosts: set[str], require_https: bool = False) -> str:
    default = reverse("dashboard")
    if not next_url or not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts=allowed_hosts, require_https=require_https
    ):
        return default
    try:
        match = resolve(urlsplit(next_url).path)
    except (Resolver404, ValueError):
        return default
    if not match.kwargs:
        return next_url
    name = match.view_name
    if name in FALLBACKS:
        return reverse(FALLBACKS[name])
    return default

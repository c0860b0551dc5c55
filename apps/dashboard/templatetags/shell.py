"""Template helpers of the app shell (`base.html`): marking the current page in the sidebar."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag(takes_context=True)
def current_page(context: dict[str, Any], *view_names: str) -> SafeString | str:
    """`aria-current="page"` when the request was routed to one of `view_names` (a trailing
    `*` matches a namespace: "media:*"), so a sidebar link says where the user is."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    current = match.view_name
    for name in view_names:
        if current == name or (name.endswith(":*") and current.startswith(name[:-1])):
            return format_html('aria-current="{}"', "page")
    return ""


# The top bar's title for each part of the site, by URL namespace (allauth's pages have none:
# their names start with "account_", "socialaccount_" or "usersessions_").
SECTION_TITLES = {
    "dashboard": "Dashboard",
    "chat": "Chat",
    "media": "Studio",
    "workspaces": "Workspace",
    "apikeys": "API keys",
    "billing": "Billing",
    "credits": "Credits and usage",
    "accounts": "Account",
}


@register.simple_tag(takes_context=True)
def section_title(context: dict[str, Any]) -> str:
    """The name of the part of the site the page belongs to, for the top bar."""
    match = getattr(context.get("request"), "resolver_match", None)
    if match is None:
        return ""
    if match.namespace:
        return SECTION_TITLES.get(match.namespace.split(":")[0], "")
    if match.url_name and match.url_name.startswith(("account_", "socialaccount_", "usersessions_")):
        return "Account"
    return SECTION_TITLES.get(match.url_name or "", "")

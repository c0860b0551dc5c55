"""What every signed-in page's sidebar draws, for templates (`base.html`)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.chat.selectors import sidebar_conversations, sidebar_groups


def sidebar(request: HttpRequest) -> dict[str, Any]:
    """The sidebar's conversation history for the signed-in user's current workspace only
    (nothing without one). Lazy: the query runs when a template draws the list, so JSON
    views and fragments that never show the sidebar pay nothing."""
    user = getattr(request, "user", None)
    workspace = getattr(request, "workspace", None)
    if user is None or not user.is_authenticated or workspace is None:
        return {}
    return {"sidebar_groups": SimpleLazyObject(lambda: sidebar_groups(sidebar_conversations(workspace=workspace)))}

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.workspaces.models import Membership

SESSION_KEY = "current_workspace_id"


def resolve_membership(request: HttpRequest) -> Membership | None:
    """The requester's membership in the workspace kept in the session, falling back to their
    personal (then oldest) workspace when the session names none they belong to."""
    user: Any = request.user
    memberships = Membership.objects.active().select_related("workspace").filter(user=user)
    wanted = request.session.get(SESSION_KEY)
    membership = None
    if wanted is not None:
        membership = memberships.filter(workspace_id=wanted).first()
    if membership is None:
        membership = memberships.order_by("-workspace__is_personal", "created_at", "id").first()
        if membership is not None:
            request.session[SESSION_KEY] = membership.workspace_id
        else:
            request.session.pop(SESSION_KEY, None)
    return membership


class CurrentWorkspaceMiddleware:
    """Sets `request.membership` and `request.workspace` (None when signed out or without
    any workspace). Every workspace-scoped view reads its workspace from here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership = resolve_membership(request)
        request.membership = membership  # type: ignore[attr-defined]
        request.workspace = membership.workspace if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)

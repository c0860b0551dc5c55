from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.workspaces.models import Workspace


def workspaces(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_workspace": getattr(request, "workspace", None),
        "current_membership": getattr(request, "membership", None),
        # Evaluated only by templates that render the switcher.
        "user_workspaces": SimpleLazyObject(
            lambda: list(Workspace.objects.for_user(user).order_by("-is_personal", "name"))
        ),
    }

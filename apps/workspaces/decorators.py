from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect, render

from apps.workspaces.roles import Perm


def workspace_required(
    perm: str = Perm.USE,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Signed-in user with a current workspace whose role grants `perm`; 403 page otherwise."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            membership = getattr(request, "membership", None)
            if membership is None:
                messages.info(request, "Create a workspace to get started.")
                return redirect("workspaces:create")
            if not membership.has_perm(perm):
                return render(
                    request,
                    "errors/403.html",
                    {"reason": "Your role in this workspace does not allow this."},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorator

"""The dashboard: where a signed-in user lands. It only reads (see `selectors`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from apps.core.http import AuthedRequest
from apps.dashboard import selectors


@login_required
def dashboard(request: AuthedRequest) -> HttpResponse:
    """Quick starts, the workspace's credits with 30 days of usage, recent chats and studio
    jobs, the plan, and the first steps of a new workspace until they are all done. Without a
    workspace: an invitation to create one."""
    workspace, membership = request.workspace, request.membership
    if workspace is None or membership is None:
        return render(request, "dashboard/dashboard.html", {})
    checklist = selectors.onboarding_checklist(workspace=workspace, membership=membership)
    context: dict[str, Any] = {
        "checklist": checklist,
        "checklist_open": not all(item.done for item in checklist),
        "checklist_done": sum(1 for item in checklist if item.done),
        "usage": selectors.usage_sparkline(workspace=workspace),
        "recent_conversations": selectors.recent_conversations(workspace=workspace),
        "recent_jobs": selectors.recent_jobs(workspace=workspace),
        "plan": selectors.plan_summary(workspace=workspace),
    }
    return render(request, "dashboard/dashboard.html", context)


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG icon
    (resolved per request, so a hashed static name in production is followed)."""
    return redirect(static("favicon.svg"))

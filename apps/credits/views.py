from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from apps.core.http import WorkspaceRequest
from apps.credits.selectors import credits_balance
from apps.workspaces.decorators import workspace_required
from apps.workspaces.roles import Perm


@workspace_required(Perm.USE)
def overview(request: WorkspaceRequest) -> HttpResponse:
    balance = credits_balance(workspace=request.workspace, with_grants=True)
    return render(request, "credits/overview.html", {"balance": balance})

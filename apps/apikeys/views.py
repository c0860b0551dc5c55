"""The API keys page of the current workspace: everyone in it sees the list; owners and admins
create keys (the raw key is shown once, in the response to the POST, and stored nowhere) and
revoke them."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.apikeys.exceptions import ApiKeyError
from apps.apikeys.forms import ApiKeyForm
from apps.apikeys.models import ApiKey
from apps.apikeys.selectors import apikey_list, apikey_model_choices
from apps.apikeys.services import apikey_create, apikey_revoke
from apps.core.http import WorkspaceRequest
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

PAGE_SIZE = 50


def _forbidden(request: WorkspaceRequest, reason: str) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": reason}, status=403)


@workspace_required(Perm.USE)
@require_GET
def key_list(request: WorkspaceRequest) -> HttpResponse:
    page = Paginator(apikey_list(workspace=request.workspace), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "apikeys/list.html",
        {"page_obj": page, "keys": page.object_list, "can_manage": request.membership.has_perm(Perm.MANAGE_SETTINGS)},
    )


@workspace_required(Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def key_create(request: WorkspaceRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None, models=apikey_model_choices(workspace=request.workspace))
    if request.method != "POST":
        return render(request, "apikeys/create.html", {"form": form})
    if not form.is_valid():
        return render(request, "apikeys/create.html", {"form": form}, status=400)
    try:
        key, raw_key = apikey_create(workspace=request.workspace, acting_user=request.user, **form.service_fields())
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ApiKeyError as exc:
        form.add_error(None, exc.message)
        return render(request, "apikeys/create.html", {"form": form}, status=400)
    # The key is rendered into this response only: not in the session, a message or a URL.
    response = render(request, "apikeys/created.html", {"key": key, "raw_key": raw_key})
    response["Cache-Control"] = "no-store"
    return response


@workspace_required(Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def key_revoke(request: WorkspaceRequest, key_id: int) -> HttpResponse:
    key = get_for_workspace_or_404(
        ApiKey.objects.select_related("workspace", "created_by"), request.workspace, pk=key_id
    )
    if request.method != "POST":
        return render(request, "apikeys/revoke.html", {"key": key})
    if key.revoked_at is not None:
        messages.info(request, f"“{key.name}” was already revoked.")
        return redirect("apikeys:list")
    try:
        apikey_revoke(key=key, acting_user=request.user)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    messages.success(request, f"“{key.name}” ({key.prefix}…) is revoked; requests using it are refused from now on.")
    return redirect("apikeys:list")

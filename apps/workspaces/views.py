from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.http import AuthedRequest, WorkspaceRequest
from apps.workspaces import services
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspaceError
from apps.workspaces.forms import DeleteWorkspaceForm, InviteForm, ResponseCacheForm, RoleForm, WorkspaceForm
from apps.workspaces.middleware import SESSION_KEY
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Perm, Role
from apps.workspaces.scoping import get_for_workspace_or_404
from apps.workspaces.switching import switch_target

_ID_RE = re.compile(r"[0-9]{1,18}")


def _fail(request: HttpRequest, exc: WorkspaceError, template: str, context: dict) -> HttpResponse:
    messages.error(request, exc.message)
    return render(request, template, context, status=exc.status_code)


@login_required
def workspace_list(request: AuthedRequest) -> HttpResponse:
    memberships = (
        Membership.objects.active()
        .select_related("workspace")
        .filter(user=request.user)
        .order_by("-workspace__is_personal", "workspace__name")
    )
    return render(request, "workspaces/list.html", {"memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: AuthedRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                workspace = services.workspace_create(acting_user=request.user, name=form.cleaned_data["name"])
            except WorkspaceError as exc:
                return _fail(request, exc, "workspaces/create.html", {"form": form})
            request.session[SESSION_KEY] = workspace.pk
            messages.success(request, f"Workspace “{workspace.name}” created.")
            return redirect("dashboard")
        return render(request, "workspaces/create.html", {"form": form}, status=400)
    return render(request, "workspaces/create.html", {"form": form})


@login_required
@require_POST
def workspace_switch(request: AuthedRequest) -> HttpResponse:
    workspace_id = request.POST.get("workspace", "")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    workspace = (
        Workspace.objects.for_user(request.user).filter(pk=int(workspace_id)).first()
        if _ID_RE.fullmatch(workspace_id)
        else None
    )
    if workspace is None:
        return render(request, "errors/404.html", status=404)
    request.session[SESSION_KEY] = workspace.pk
    target = switch_target(
        request.POST.get("next"), allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(target)


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def workspace_settings(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    rename_form = WorkspaceForm(initial={"name": workspace.name})
    context = {
        "rename_form": rename_form,
        "delete_form": DeleteWorkspaceForm(),
        "cache_form": ResponseCacheForm(initial={"response_cache": workspace.response_cache}),
    }
    if request.method == "POST":
        rename_form = WorkspaceForm(request.POST)
        context["rename_form"] = rename_form
        if not rename_form.is_valid():
            return render(request, "workspaces/settings.html", context, status=400)
        try:
            services.workspace_rename(
                workspace=workspace, name=rename_form.cleaned_data["name"], acting_user=request.user
            )
        except WorkspaceError as exc:
            return _fail(request, exc, "workspaces/settings.html", context)
        messages.success(request, "Workspace renamed.")
        return redirect("workspaces:settings")
    return render(request, "workspaces/settings.html", context)


@workspace_required(Perm.MANAGE_SETTINGS)
@require_POST
def workspace_response_cache(request: WorkspaceRequest) -> HttpResponse:
    form = ResponseCacheForm(request.POST)
    form.is_valid()  # a checkbox: absent means off
    enabled = bool(form.cleaned_data.get("response_cache"))
    try:
        services.workspace_response_cache_set(workspace=request.workspace, enabled=enabled, acting_user=request.user)
    except WorkspaceError as exc:
        messages.error(request, exc.message)
        return redirect("workspaces:settings")
    messages.success(request, "Response cache turned on." if enabled else "Response cache turned off.")
    return redirect("workspaces:settings")


@workspace_required(Perm.DELETE)
@require_POST
def workspace_delete(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    form = DeleteWorkspaceForm(request.POST)
    context = {
        "rename_form": WorkspaceForm(initial={"name": workspace.name}),
        "delete_form": form,
        "cache_form": ResponseCacheForm(initial={"response_cache": workspace.response_cache}),
    }
    if not form.is_valid():
        return render(request, "workspaces/settings.html", context, status=400)
    try:
        services.workspace_delete(
            workspace=workspace, acting_user=request.user, confirm_name=form.cleaned_data["confirm_name"]
        )
    except WorkspaceError as exc:
        return _fail(request, exc, "workspaces/settings.html", context)
    request.session.pop(SESSION_KEY, None)
    messages.success(request, f"Workspace “{workspace.name}” deleted.")
    return redirect("workspaces:list")


def _members_context(request: WorkspaceRequest, invite_form: InviteForm | None = None) -> dict:
    workspace = request.workspace
    return {
        "members": Membership.objects.for_workspace(workspace).select_related("user").order_by("created_at"),
        "invitations": Invitation.objects.for_workspace(workspace)
        .pending()
        .select_related("invited_by")
        .order_by("-created_at"),
        "invite_form": invite_form or InviteForm(acting_role=request.membership.role),
        "role_choices": Role.choices,
        "can_manage": request.membership.has_perm(Perm.MANAGE_MEMBERS),
        # Only owners may change or remove an owner, or make someone owner.
        "is_owner": request.membership.role == Role.OWNER,
    }


@workspace_required(Perm.USE)
def members(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "workspaces/members.html", _members_context(request))


def _members_action(request: WorkspaceRequest, action: Callable[[], object], done: str) -> HttpResponse:
    """Run a change posted from the members page: a refusal shows the page again with its
    message (and status), success goes back to it saying `done`."""
    try:
        action()
    except WorkspaceError as exc:
        return _fail(request, exc, "workspaces/members.html", _members_context(request))
    messages.success(request, done)
    return redirect("workspaces:members")


@workspace_required(Perm.MANAGE_MEMBERS)
@require_POST
def member_invite(request: WorkspaceRequest) -> HttpResponse:
    form = InviteForm(request.POST, acting_role=request.membership.role)
    if not form.is_valid():
        return render(request, "workspaces/members.html", _members_context(request, form), status=400)
    try:
        services.workspace_member_invite(
            workspace=request.workspace,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            acting_user=request.user,
        )
    except WorkspaceError as exc:
        return _fail(request, exc, "workspaces/members.html", _members_context(request, form))
    messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
    return redirect("workspaces:members")


@workspace_required(Perm.MANAGE_MEMBERS)
@require_POST
def member_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_for_workspace_or_404(
        Membership.objects.select_related("user", "workspace"), request.workspace, pk=membership_id
    )
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return render(request, "workspaces/members.html", _members_context(request), status=400)
    role = form.cleaned_data["role"]
    return _members_action(
        request,
        lambda: services.workspace_member_role_change(membership=membership, role=role, acting_user=request.user),
        f"{membership.user.name} is now {role}.",
    )


@workspace_required(Perm.MANAGE_MEMBERS)
@require_POST
def member_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_for_workspace_or_404(
        Membership.objects.select_related("user", "workspace"), request.workspace, pk=membership_id
    )
    return _members_action(
        request,
        lambda: services.workspace_member_remove(membership=membership, acting_user=request.user),
        f"{membership.user.name} was removed from the workspace.",
    )


@workspace_required(Perm.MANAGE_MEMBERS)
@require_POST
def invitation_resend(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_for_workspace_or_404(
        Invitation.objects.select_related("workspace"), request.workspace, pk=invitation_id
    )
    return _members_action(
        request,
        lambda: services.workspace_invitation_resend(invitation=invitation, acting_user=request.user),
        f"Invitation resent to {invitation.email}.",
    )


@workspace_required(Perm.MANAGE_MEMBERS)
@require_POST
def invitation_revoke(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_for_workspace_or_404(
        Invitation.objects.select_related("workspace"), request.workspace, pk=invitation_id
    )
    return _members_action(
        request,
        lambda: services.workspace_invitation_revoke(invitation=invitation, acting_user=request.user),
        f"Invitation to {invitation.email} revoked.",
    )


@workspace_required(Perm.USE)
@require_POST
def workspace_leave(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    try:
        services.workspace_member_leave(workspace=workspace, acting_user=request.user)
    except WorkspaceError as exc:
        messages.error(request, exc.message)
        return redirect("workspaces:settings")
    request.session.pop(SESSION_KEY, None)
    messages.success(request, f"You left “{workspace.name}”.")
    return redirect("workspaces:list")


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_by_token(token)
    context: dict[str, Any] = {"invitation": invitation, "token": token}
    if invitation is None:
        return render(
            request, "workspaces/invitation.html", {"error": "This invitation link is not valid."}, status=404
        )
    if not invitation.is_open or invitation.workspace.is_deleted:
        reasons: dict[str, str] = {
            Invitation.Status.EXPIRED: "This invitation has expired. Ask for a new one.",
            Invitation.Status.REVOKED: "This invitation was revoked. Ask for a new one.",
            Invitation.Status.ACCEPTED: "This invitation was already used.",
        }
        # Deleting a workspace revokes its invitations; say why rather than "revoked".
        deleted = invitation.workspace.is_deleted
        reason = "This workspace no longer exists." if deleted else reasons[invitation.status]
        return render(request, "workspaces/invitation.html", {**context, "error": reason}, status=410)
    if not request.user.is_authenticated:
        # Whoever opened the emailed link controls that inbox: signing up with the same
        # address needs no second verification email.
        from allauth.account.adapter import get_adapter

        get_adapter(request).stash_verified_email(request, invitation.email)
        query = urlencode({"next": reverse("workspaces:invitation_accept", args=[token])})
        context["login_url"] = f"{reverse('account_login')}?{query}"
        context["signup_url"] = f"{reverse('account_signup')}?{query}"
        return render(request, "workspaces/invitation.html", context)
    if request.method == "POST":
        try:
            membership = services.workspace_invitation_accept(token=token, acting_user=request.user)
        except WorkspaceError as exc:
            return render(
                request, "workspaces/invitation.html", {**context, "error": exc.message}, status=exc.status_code
            )
        request.session[SESSION_KEY] = membership.workspace_id
        messages.success(request, f"Welcome to “{membership.workspace.name}”.")
        return redirect("dashboard")
    # Say before the click when the signed-in account cannot accept it.
    context["email_matches"] = services.user_has_verified_email(request.user, invitation.email)
    return render(request, "workspaces/invitation.html", context)

"""Reads about workspaces shared by other apps: access checks and what the plan allows."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from apps.workspaces.entitlements import OPEN, Entitlements
from apps.workspaces.models import Membership, Workspace, WorkspaceEntitlements


def workspace_access_active(*, user_id: int, workspace_id: int) -> bool:
    """Whether the user may still use the workspace: an active account, still a member, the
    workspace not deleted. One query; long-lived connections call it while they stream."""
    return Membership.objects.filter(
        user_id=user_id, user__is_active=True, workspace_id=workspace_id, workspace__deleted_at__isnull=True
    ).exists()


_MEMO = "_entitlements_memo"


def workspace_entitlements(workspace: Workspace | int | None) -> Entitlements:
    """What the workspace's plan allows, as billing last pushed it: its own plan until that
    expires, else the default plan's, else (no plans at all) everything open. No workspace:
    what one without a plan of its own gets.

    One query (its row and the default row together), none when the workspace was loaded with
    `select_related("entitlements")` and has a plan in force. Remembered on the workspace
    instance, so the checks of one request (API access, rate limits, models) read it once."""
    if isinstance(workspace, Workspace) and _MEMO in workspace.__dict__:
        memo: Entitlements = workspace.__dict__[_MEMO]
        return memo
    found = _entitlements_lookup(workspace)
    if isinstance(workspace, Workspace):
        workspace.__dict__[_MEMO] = found
    return found


def _entitlements_lookup(workspace: Workspace | int | None) -> Entitlements:
    now = timezone.now()
    rows = WorkspaceEntitlements.objects.order_by()
    if workspace is None:
        rows = rows.filter(workspace__isnull=True)
    elif isinstance(workspace, Workspace) and "entitlements" in workspace._state.fields_cache:
        own = workspace._state.fields_cache["entitlements"]
        if own is not None and own.in_force(now):
            return own.as_entitlements()
        rows = rows.filter(workspace__isnull=True)
    else:
        workspace_id = workspace if isinstance(workspace, int) else workspace.pk
        rows = rows.filter(Q(workspace_id=workspace_id) | Q(workspace__isnull=True))
    own = default = None
    for row in rows:
        if row.workspace_id is None:
            default = row
        else:
            own = row
    if own is not None and own.in_force(now):
        return own.as_entitlements()
    return default.as_entitlements() if default is not None else OPEN


def workspace_entitlements_forget(workspace: Workspace) -> None:
    """Drop what `workspace_entitlements` remembered on this instance (after a push)."""
    workspace.__dict__.pop(_MEMO, None)


def workspace_plan_code(workspace: Workspace | int | None) -> str | None:
    """What a model's plan list (`AIModel.plans`) is checked against: the code of the plan in
    force (for no workspace: the default plan's), None without plans (a model listing plans is
    then usable by every workspace)."""
    return workspace_entitlements(workspace).plan_code


def workspace_member_limit(workspace: Workspace | int, default: int) -> int:
    """Members (with pending invitations) the workspace's plan allows; `default` when the plan
    sets none."""
    limit = workspace_entitlements(workspace).max_members
    return default if limit is None else limit


def workspace_owned_limit(owned_workspace_ids: list[int], default: int) -> int:
    """Workspaces a person may own: the most any plan of the workspaces they own allows (a paid
    team workspace lifts the limit), `default` when one of them has a plan that sets none."""
    limits = [workspace_entitlements(pk).max_workspaces for pk in owned_workspace_ids]
    known = [limit for limit in limits if limit is not None]
    if not known or len(known) < len(limits):
        return max([default, *known])
    return max(known)

"""Reads about workspace access shared by other apps."""

from __future__ import annotations

from apps.workspaces.models import Membership


def workspace_access_active(*, user_id: int, workspace_id: int) -> bool:
    """Whether the user may still use the workspace: an active account, still a member, the
    workspace not deleted. One query; long-lived connections call it while they stream."""
    return Membership.objects.filter(
        user_id=user_id, user__is_active=True, workspace_id=workspace_id, workspace__deleted_at__isnull=True
    ).exists()

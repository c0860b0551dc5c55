from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.accounts.exporters import register
from apps.workspaces.models import Invitation, Membership

if TYPE_CHECKING:
    from apps.accounts.models import User


@register("workspaces")
def export_memberships(user: User) -> list[dict[str, Any]]:
    return [
        {
            "workspace_id": m.workspace_id,
            "name": m.workspace.name,
            "role": m.role,
            "personal": m.workspace.is_personal,
            "joined_at": m.created_at.isoformat(),
        }
        for m in Membership.objects.active().select_related("workspace").filter(user=user)
    ]


@register("invitations_sent")
def export_invitations(user: User) -> list[dict[str, Any]]:
    return [
        {
            "workspace_id": i.workspace_id,
            "email": i.email,
            "role": i.role,
            "status": i.status,
            "created_at": i.created_at.isoformat(),
        }
        for i in Invitation.objects.filter(invited_by=user).order_by("id")
    ]

from __future__ import annotations

from apps.core.errors import DomainError


class WorkspaceError(DomainError):
    """A workspace rule refused the action; the message is safe to show to the user."""

    status_code = 400
    code = "invalid"


class WorkspacePermissionDenied(WorkspaceError):
    status_code = 403
    code = "permission_denied"


class WorkspaceLimitReached(WorkspaceError):
    status_code = 400


class InvitationInvalid(WorkspaceError):
    status_code = 400

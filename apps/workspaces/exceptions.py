from __future__ import annotations


class WorkspaceError(Exception):
    """A workspace rule refused the action; the message is safe to show to the user."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WorkspacePermissionDenied(WorkspaceError):
    status_code = 403


class WorkspaceLimitReached(WorkspaceError):
    status_code = 400


class InvitationInvalid(WorkspaceError):
    status_code = 400

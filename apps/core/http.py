"""Request types for views: what the middleware guarantees once a view's decorators ran."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Membership, Workspace


class AuthedRequest(HttpRequest):
    user: User
    workspace: Workspace | None
    membership: Membership | None


class WorkspaceRequest(AuthedRequest):
    """Behind `workspace_required`: the user is signed in and a member of `workspace`."""

    workspace: Workspace
    membership: Membership

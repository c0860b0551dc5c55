"""What workspaces does when accounts announces something. Both signals are sent inside the
account's own transaction: a person never exists without their personal workspace, and their
account never goes while leaving workspaces without an owner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.dispatch import receiver

from apps.accounts.signals import user_created, user_deleting
from apps.workspaces.services import workspace_create_personal, workspace_delete_solely_owned

if TYPE_CHECKING:
    from apps.accounts.models import User


@receiver(user_created, dispatch_uid="workspaces_personal_workspace")
def _create_personal_workspace(sender: Any, user: User, **kwargs: Any) -> None:
    workspace_create_personal(user=user)


@receiver(user_deleting, dispatch_uid="workspaces_delete_solely_owned")
def _delete_solely_owned(sender: Any, user: User, acting_user: User | None, **kwargs: Any) -> None:
    workspace_delete_solely_owned(user=user, acting_user=acting_user)

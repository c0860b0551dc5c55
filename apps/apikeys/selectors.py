"""Reads for the API keys page and form."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q

from apps.apikeys.models import ApiKey, ApiKeyQuerySet

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace


def apikey_list(*, workspace: Workspace) -> ApiKeyQuerySet:
    """The workspace's keys, newest first, with their creator (one query per page)."""
    return ApiKey.objects.for_workspace(workspace).select_related("created_by").order_by("-created_at", "-id")


def apikey_model_choices(*, workspace: Workspace) -> list[tuple[str, str]]:
    """Models a key can be limited to: the chat and embedding models the workspace may use, in
    picker order."""
    from apps.generation.models import AIModel

    models = AIModel.objects.filter(Q(supports_chat=True) | Q(supports_embeddings=True)).usable_for(workspace, None)
    return [(model.model_id, f"{model.display_name} ({model.model_id})") for model in models]


def apikey_still_valid(key_id: int) -> bool:
    """Whether a key that authenticated a request in progress may still be used: not revoked,
    not expired, its workspace not deleted, its creator (when there is one) still active. One
    query; a streamed answer asks it every few seconds."""
    return (
        ApiKey.objects.active()
        .filter(pk=key_id, workspace__deleted_at__isnull=True)
        .filter(Q(created_by__isnull=True) | Q(created_by__is_active=True, created_by__suspended_at__isnull=True))
        .exists()
    )

"""The one mechanism for workspace-owned data: every workspace-owned model inherits
`WorkspaceOwnedModel`, and views reach its rows only through `.for_workspace(request.workspace)`
or `get_for_workspace_or_404`, so another workspace's id answers 404."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import Http404

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

M = TypeVar("M", bound=models.Model)


class WorkspaceScopedQuerySet(models.QuerySet[M]):
    def for_workspace(self, workspace: Workspace | None) -> Self:
        if workspace is None:
            return self.none()
        return self.filter(workspace=workspace)


class WorkspaceOwnedModel(models.Model):
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="%(class)ss")

    objects: Any = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        abstract = True


def get_for_workspace_or_404(queryset: models.QuerySet[M] | type[M], workspace: Workspace | None, **lookup: Any) -> M:
    qs: models.QuerySet[M] = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    if workspace is None:
        raise Http404("No workspace selected.")
    try:
        return qs.filter(workspace=workspace).get(**lookup)
    except (ObjectDoesNotExist, ValueError, TypeError) as exc:
        raise Http404(f"No {qs.model._meta.verbose_name} matches the given query.") from exc

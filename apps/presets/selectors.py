"""The presets someone can see in a workspace: their own personal ones there, the workspace's,
and the active library presets; never another workspace's or another person's personal ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.presets.models import Preset, PresetFavourite

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace


@dataclass(frozen=True)
class PresetFilters:
    query: str = ""
    category: str = ""
    scope: str = ""  # "", personal, workspace, library
    favourites: bool = False
    output: str = ""


def visible_presets(*, workspace: Workspace, user: User, filters: PresetFilters | None = None) -> QuerySet[Preset]:
    f = filters or PresetFilters()
    qs = Preset.objects.filter(
        Q(scope=Preset.Scope.LIBRARY, workspace__isnull=True, is_active=True)
        | Q(scope=Preset.Scope.WORKSPACE, workspace=workspace)
        | Q(scope=Preset.Scope.PERSONAL, workspace=workspace, owner=user)
    ).annotate(is_favourite=Exists(PresetFavourite.objects.filter(user=user, preset=OuterRef("pk"))))
    if f.scope:
        qs = qs.filter(scope=f.scope)
    if f.category:
        qs = qs.filter(category=f.category)
    if f.output:
        qs = qs.filter(output=f.output)
    if f.favourites:
        qs = qs.filter(is_favourite=True)
    query = " ".join(f.query.split())
    if query:
        qs = qs.filter(Q(name__icontains=query) | Q(description__icontains=query) | Q(template__icontains=query))
    return qs.select_related("default_model", "owner").order_by("-is_favourite", "-usage_count", "name", "id")


def visible_preset(*, workspace: Workspace, user: User, preset_id: int) -> Preset | None:
    """One preset the user may use in the workspace (None: not theirs to see)."""
    return visible_presets(workspace=workspace, user=user).filter(pk=preset_id).first()

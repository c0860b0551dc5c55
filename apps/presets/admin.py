"""The preset library is curated here (create, edit, hide, delete: audited). Workspace and
personal presets are shown read-only: they belong to their workspace."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import staff_user
from apps.presets.exceptions import PresetError
from apps.presets.models import Preset, PresetFavourite
from apps.presets.services import EDITABLE, preset_library_delete, preset_library_save
from apps.presets.variables import clean_variables


class PresetForm(forms.ModelForm):
    class Meta:
        model = Preset
        fields = [*EDITABLE, "is_active"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            data["variables"] = clean_variables(data.get("template") or "", data.get("variables"))
        except PresetError as exc:
            raise ValidationError({"variables": exc.message}) from exc
        return data


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    form = PresetForm
    list_display = ["name", "scope", "category", "output", "workspace", "usage_count", "last_used_at", "is_active"]
    list_filter = ["scope", "category", "output", "is_active"]
    search_fields = ["name", "description", "workspace__name", "owner__email"]
    list_select_related = ["workspace", "owner"]
    raw_id_fields = ["workspace", "owner", "default_model"]
    readonly_fields = ["scope", "workspace", "owner", "usage_count", "last_used_at", "created_at", "updated_at"]
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: Preset | None = None) -> bool:
        if obj is not None and obj.scope != Preset.Scope.LIBRARY:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Preset | None = None) -> bool:
        if obj is not None and obj.scope != Preset.Scope.LIBRARY:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Preset, form: forms.ModelForm, change: bool) -> None:
        preset_library_save(preset=obj, acting_user=staff_user(request))

    def delete_model(self, request: HttpRequest, obj: Preset) -> None:
        preset_library_delete(preset=obj, acting_user=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Preset]) -> None:
        for preset in queryset.filter(scope=Preset.Scope.LIBRARY):
            preset_library_delete(preset=preset, acting_user=staff_user(request))


@admin.register(PresetFavourite)
class PresetFavouriteAdmin(admin.ModelAdmin):
    list_display = ["preset", "user", "created_at"]
    list_select_related = ["preset", "user"]
    raw_id_fields = ["preset", "user"]
    search_fields = ["preset__name", "user__email"]

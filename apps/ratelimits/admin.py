from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import staff_user
from apps.ratelimits.defaults import LIMIT_FIELDS
from apps.ratelimits.models import WorkspaceRateLimit
from apps.ratelimits.services import ratelimit_override_delete, ratelimit_override_save


@admin.register(WorkspaceRateLimit)
class WorkspaceRateLimitAdmin(admin.ModelAdmin):
    list_display = ["workspace", *LIMIT_FIELDS, "note", "updated_at"]
    list_filter = ["updated_at"]
    search_fields = ["workspace__name", "workspace__slug", "note"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]
    readonly_fields = ["updated_at"]
    fieldsets = [
        (None, {"fields": ["workspace", "note", "updated_at"]}),
        ("Per API key", {"fields": ["key_rpm", "key_tpm"]}),
        ("Per member", {"fields": ["user_rpm", "user_tpm"]}),
        ("Whole workspace", {"fields": ["workspace_rpm", "workspace_tpm"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: WorkspaceRateLimit | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        # An override belongs to one workspace; moving it would silently change two tenants.
        return [*fields, "workspace"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: WorkspaceRateLimit, form: forms.ModelForm, change: bool) -> None:
        ratelimit_override_save(override=obj, acting_user=staff_user(request))

    def delete_model(self, request: HttpRequest, obj: WorkspaceRateLimit) -> None:
        ratelimit_override_delete(override=obj, acting_user=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WorkspaceRateLimit]) -> None:
        for obj in queryset.select_related("workspace"):
            ratelimit_override_delete(override=obj, acting_user=staff_user(request))

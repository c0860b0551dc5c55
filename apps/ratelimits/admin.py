from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.ratelimits.defaults import LIMIT_FIELDS
from apps.ratelimits.models import WorkspaceRateLimit


def _plain(value: Any) -> Any:
    return value.pk if isinstance(value, models.Model) else value


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
        super().save_model(request, obj, form, change)
        audit_record(
            actor=cast(User, request.user),
            action="ratelimits.override_change" if change else "ratelimits.override_create",
            target=obj,
            workspace=obj.workspace,
            metadata={
                field: {"from": _plain(form.initial.get(field)), "to": _plain(form.cleaned_data.get(field))}
                for field in form.changed_data
            },
        )

    def delete_model(self, request: HttpRequest, obj: WorkspaceRateLimit) -> None:
        self._audit_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WorkspaceRateLimit]) -> None:
        for obj in queryset.select_related("workspace"):
            self._audit_delete(request, obj)
        super().delete_queryset(request, queryset)

    def _audit_delete(self, request: HttpRequest, obj: WorkspaceRateLimit) -> None:
        audit_record(
            actor=cast(User, request.user),
            action="ratelimits.override_delete",
            target=obj,
            workspace=obj.workspace,
            metadata={field: getattr(obj, field) for field in LIMIT_FIELDS},
        )

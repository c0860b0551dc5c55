"""API keys in the back office: read-only (keys are created in the app or by `manage.py
apikey`, and never show their hash), with a revoke action that goes through `apikey_revoke`
and is audited with the staff member as actor."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_revoke
from apps.core.admin import staff_user


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix_display",
        "workspace",
        "scopes_display",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [
        ("revoked_at", admin.EmptyFieldListFilter),
        ("expires_at", admin.EmptyFieldListFilter),
        ("last_used_at", admin.EmptyFieldListFilter),
        "created_at",
    ]
    search_fields = ["=prefix", "name", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    exclude = ["key_hash"]
    readonly_fields = [
        "workspace",
        "name",
        "prefix",
        "scopes",
        "expires_at",
        "daily_cap_units",
        "monthly_cap_units",
        "allowed_models",
        "rpm_limit",
        "tpm_limit",
        "created_by",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
        "revoked_by",
    ]
    list_per_page = 100
    show_full_result_count = False
    actions = ["revoke_keys"]

    @admin.display(description="Key", ordering="prefix")
    def prefix_display(self, obj: ApiKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="Scopes")
    def scopes_display(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or [])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created in the app or by `manage.py apikey create`, which show the key once

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # a direct edit would skip validation and the audit log

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: the row stays for the audit trail and the usage it links

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("apikeys.change_apikey")

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        staff = staff_user(request)
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True).select_related("workspace"):
            apikey_revoke(key=key, acting_user=staff, as_staff=True)
            revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key(s)."
        if skipped:
            text += f" {skipped} selected key(s) were already revoked."
        self.message_user(request, text, messages.SUCCESS if revoked else messages.WARNING)

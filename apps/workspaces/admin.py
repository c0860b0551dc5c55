from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apps.accounts.admin import user_inline_register
from apps.workspaces.models import Invitation, Membership, Workspace, WorkspaceEntitlements


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Workspace | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")


@user_inline_register
class UserMembershipInline(admin.TabularInline):
    """A user's workspaces, on the user's admin page."""

    model = Membership
    fk_name = "user"
    extra = 0
    fields = ["workspace", "role", "created_at"]
    readonly_fields = ["workspace", "role", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("workspace")


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_personal", "member_count", "created_by", "created_at", "deleted_at"]
    list_filter = ["is_personal", "response_cache", ("deleted_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    list_select_related = ["created_by"]
    readonly_fields = ["slug", "created_by", "created_at", "deleted_at"]
    inlines = [MembershipInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).annotate(_members=Count("memberships", distinct=True))

    @admin.display(description="Members", ordering="_members")
    def member_count(self, obj: Workspace) -> int:
        return obj._members  # type: ignore[attr-defined]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Workspace], search_term: str
    ) -> tuple[QuerySet[Workspace], bool]:
        qs, _ = super().get_search_results(request, queryset, search_term)
        return qs.distinct(), False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    raw_id_fields = ["user", "workspace"]
    readonly_fields = ["user", "workspace", "role", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Memberships change through invitations and the members page, which audit them.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "workspace", "role", "status_display", "invited_by", "created_at", "expires_at"]
    list_filter = [
        "role",
        ("accepted_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
        "created_at",
    ]
    search_fields = ["email", "workspace__name"]
    list_select_related = ["workspace", "invited_by"]
    exclude = ["token_hash"]
    readonly_fields = [
        "workspace",
        "email",
        "role",
        "invited_by",
        "created_at",
        "sent_at",
        "send_count",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]

    @admin.display(description="Status")
    def status_display(self, obj: Invitation) -> str:
        return str(Invitation.Status(obj.status).label)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False


@admin.register(WorkspaceEntitlements)
class WorkspaceEntitlementsAdmin(admin.ModelAdmin):
    """What each workspace's plan allows, as billing pushed it (read-only: change the plan in
    Billing, and the rows follow). The row without a workspace is the default plan's."""

    list_display = [
        "workspace",
        "plan_name",
        "expires_at",
        "api_access",
        "voice_cloning",
        "max_members",
        "max_workspaces",
        "updated_at",
    ]
    list_filter = ["plan_code", "api_access", "voice_cloning", ("workspace", admin.EmptyFieldListFilter)]
    search_fields = ["workspace__name", "workspace__slug", "plan_code"]
    list_select_related = ["workspace"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WorkspaceEntitlements | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WorkspaceEntitlements | None = None) -> bool:
        return False

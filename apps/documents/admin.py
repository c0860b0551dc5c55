from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.documents.models import Document, DocumentVersion, Folder, Tag


class VersionInline(admin.TabularInline):
    model = DocumentVersion
    extra = 0
    fields = ["number", "saved_at", "author", "source", "model_label", "title"]
    readonly_fields = ["number", "saved_at", "author", "source", "model_label", "title"]
    can_delete = False
    show_change_link = True
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "workspace", "owner", "folder", "version", "updated_at", "deleted_at"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter), ("updated_at", admin.DateFieldListFilter)]
    search_fields = ["title", "workspace__name", "owner__email"]
    list_select_related = ["workspace", "owner", "folder"]
    raw_id_fields = ["workspace", "owner", "last_editor", "deleted_by", "folder"]
    filter_horizontal = ["tags"]
    readonly_fields = ["version", "share_token", "created_at", "updated_at"]
    inlines = [VersionInline]
    show_full_result_count = False


@admin.register(DocumentVersion)
class DocumentVersionAdmin(admin.ModelAdmin):
    list_display = ["document", "number", "author", "source", "model_label", "saved_at"]
    list_filter = ["source", ("saved_at", admin.DateFieldListFilter)]
    search_fields = ["document__title", "author__email"]
    list_select_related = ["document", "author"]
    raw_id_fields = ["workspace", "document", "author"]
    show_full_result_count = False


@admin.register(Folder)
class FolderAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_by", "created_at"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    raw_id_fields = ["workspace", "created_by"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    raw_id_fields = ["workspace"]

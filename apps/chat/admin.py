from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.chat.models import Attachment, Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "role", "status", "model_label", "content", "output_tokens", "credits_units", "feedback"]
    readonly_fields = [
        "created_at",
        "role",
        "status",
        "model_label",
        "content",
        "output_tokens",
        "credits_units",
        "feedback",
    ]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title", "workspace", "user", "model", "updated_at"]
    list_filter = [("updated_at", admin.DateFieldListFilter), "model"]
    search_fields = ["title", "workspace__name", "user__email"]
    list_select_related = ["workspace", "user", "model"]
    raw_id_fields = ["workspace", "user", "model"]
    inlines = [MessageInline]
    show_full_result_count = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "conversation",
        "role",
        "status",
        "model_label",
        "output_tokens",
        "credits_units",
        "feedback",
    ]
    list_filter = ["role", "status", "feedback", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["content", "conversation__title"]
    list_select_related = ["conversation"]
    raw_id_fields = ["workspace", "conversation", "generation", "feedback_by"]
    show_full_result_count = False


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["created_at", "name", "kind", "size", "conversation", "message", "uploaded_by"]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "conversation__title"]
    list_select_related = ["conversation", "message", "uploaded_by"]
    raw_id_fields = ["workspace", "conversation", "message", "uploaded_by"]
    readonly_fields = ["kind", "name", "content_type", "size", "created_at"]
    show_full_result_count = False

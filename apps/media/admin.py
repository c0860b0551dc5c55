from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import staff_user
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, MediaFile, Voice
from apps.media.services import job_cancel


class MediaFileInline(admin.TabularInline):
    model = MediaFile
    fk_name = "job"
    extra = 0
    can_delete = False
    fields = ["kind", "file", "content_type", "size", "width", "height", "created_at"]
    readonly_fields = ["kind", "file", "content_type", "size", "width", "height", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "kind", "model_label", "status", "progress", "attempts", "created_at"]
    list_filter = ["kind", "status", "model_label"]
    search_fields = ["id", "workspace__name", "model_label", "idempotency_key", "user__email"]
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"
    actions = ["cancel_and_release"]
    inlines = [MediaFileInline]
    readonly_fields = [
        "workspace",
        "user",
        "api_key",
        "kind",
        "model",
        "model_label",
        "parameters",
        "status",
        "progress",
        "error",
        "reservation",
        "credits_reserved_units",
        "credits_charged_units",
        "attempts",
        "heartbeat_at",
        "created_at",
        "started_at",
        "finished_at",
        "idempotency_key",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # jobs change only through their services (the action below)

    @admin.action(description="Cancel and release credits")
    def cancel_and_release(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        done = refused = 0
        for job in queryset.select_related("workspace"):
            try:
                job_cancel(job=job, acting_user=staff_user(request))
            except MediaError:
                refused += 1
            else:
                done += 1
        self.message_user(request, f"Cancelled {done} job(s); {refused} had already finished.", messages.INFO)


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "kind", "content_type", "size", "width", "height", "job", "created_at"]
    list_filter = ["kind", "content_type"]
    search_fields = ["id", "workspace__name", "file"]
    list_select_related = ["workspace", "job"]
    raw_id_fields = ["job", "parent"]
    readonly_fields = ["workspace", "file", "content_type", "size", "width", "height", "duration", "created_at"]


@admin.register(Voice)
class VoiceAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "workspace", "model", "provider_voice_id", "created_at"]
    search_fields = ["name", "workspace__name", "provider_voice_id"]
    list_select_related = ["workspace", "model"]
    readonly_fields = ["provider_voice_id", "job", "created_by", "created_at", "consent_at", "consent_text"]

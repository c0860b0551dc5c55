from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from apps.audit.models import AuditEvent
from apps.core.csv import csv_response

CSV_FIELDS = [
    "created_at",
    "actor_label",
    "impersonator_id",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "workspace_id",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "impersonator",
        "action",
        "target_type",
        "target_label",
        "workspace",
        "ip",
    ]
    list_filter = ["action", "created_at", "target_type"]
    search_fields = ["actor_label", "action", "target_label", "target_id", "workspace__name", "ip", "request_id"]
    list_select_related = ["impersonator", "workspace"]
    date_hierarchy = "created_at"
    raw_id_fields = ["actor", "impersonator", "workspace"]
    actions = ["export_csv"]
    list_per_page = 100
    show_full_result_count = False

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        return [
            "action",
            ("created_at", admin.DateFieldListFilter),
            "target_type",
            ("actor", admin.RelatedOnlyFieldListFilter),
            ("workspace", admin.RelatedOnlyFieldListFilter),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    @admin.action(description="Export selected events as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> StreamingHttpResponse:
        def rows() -> Iterator[list[Any]]:
            for event in queryset.order_by("created_at", "id").iterator(chunk_size=2000):
                yield [getattr(event, field) for field in CSV_FIELDS]

        return csv_response(filename="audit-events.csv", header=CSV_FIELDS, rows=rows())

"""The account's data export ("export my data"): the documents the user owns in every
workspace, with every version of each."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from apps.accounts.exporters import register
from apps.documents.models import Document, DocumentVersion

if TYPE_CHECKING:
    from apps.accounts.models import User


@register("documents")
def export_documents(user: User) -> list[dict[str, Any]]:
    documents = list(
        Document.objects.filter(owner=user)
        .select_related("folder")
        .prefetch_related("tags")
        .order_by("created_at", "id")
    )
    versions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in (
        DocumentVersion.objects.filter(document__owner=user)
        .select_related("author")
        .order_by("document_id", "number")
        .iterator(chunk_size=500)
    ):
        versions[v.document_id].append(
            {
                "number": v.number,
                "title": v.title,
                "body": v.body,
                "author": v.author.email if v.author else None,
                "source": v.source,
                "model": v.model_label,
                "saved_at": v.saved_at.isoformat(),
            }
        )
    return [
        {
            "id": d.pk,
            "workspace_id": d.workspace_id,
            "title": d.title,
            "body": d.body,
            "folder": d.folder.name if d.folder else None,
            "tags": [t.name for t in d.tags.all()],
            "version": d.version,
            "created_at": d.created_at.isoformat(),
            "updated_at": d.updated_at.isoformat(),
            "in_trash": d.deleted_at is not None,
            "versions": versions[d.pk],
        }
        for d in documents
    ]

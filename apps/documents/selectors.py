"""Reading documents: the filtered, searched list (PostgreSQL full-text search with ranking; a
plain case-insensitive match elsewhere), a document's history and the workspace's folders and
tags. Every query is scoped to the workspace given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.documents.models import Document, DocumentVersion, Folder, Tag

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

SEARCH_CONFIG = "simple"  # every language alike: words as written, no stemming


@dataclass(frozen=True)
class DocumentFilters:
    query: str = ""
    folder: Folder | None = None
    unfiled: bool = False
    tag: Tag | None = None
    author: Any = None  # a user: the document's owner
    updated_from: date | None = None
    updated_to: date | None = None
    trashed: bool = False


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def document_list(*, workspace: Workspace, filters: DocumentFilters | None = None) -> QuerySet[Document]:
    """The workspace's documents (or its trash) matching `filters`: best matches first when
    searching, else the most recently changed first."""
    f = filters or DocumentFilters()
    qs = Document.objects.filter(workspace=workspace, deleted_at__isnull=not f.trashed)
    if f.folder is not None:
        qs = qs.filter(folder=f.folder)
    elif f.unfiled:
        qs = qs.filter(folder__isnull=True)
    if f.tag is not None:
        qs = qs.filter(tags=f.tag)
    if f.author is not None:
        qs = qs.filter(owner=f.author)
    if f.updated_from is not None:
        qs = qs.filter(updated_at__gte=_day_start(f.updated_from))
    if f.updated_to is not None:
        qs = qs.filter(updated_at__lt=_day_start(f.updated_to + timedelta(days=1)))
    qs = qs.select_related("owner", "last_editor", "folder", "deleted_by").prefetch_related("tags")
    query = " ".join(f.query.split())
    if not query:
        return qs.order_by("-deleted_at" if f.trashed else "-updated_at", "-id")
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        vector = SearchVector("title", weight="A", config=SEARCH_CONFIG) + SearchVector(
            "body", weight="B", config=SEARCH_CONFIG
        )
        search = SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)
        return (
            qs.annotate(search=vector, rank=SearchRank(vector, search))
            .filter(Q(search=search) | Q(title__icontains=query))
            .order_by("-rank", "-updated_at", "-id")
        )
    return qs.filter(Q(title__icontains=query) | Q(body__icontains=query)).order_by("-updated_at", "-id")


def document_versions(*, document: Document) -> QuerySet[DocumentVersion]:
    """The history, newest first (the text is left out: lists show who, when and how)."""
    return (
        DocumentVersion.objects.filter(document=document, workspace_id=document.workspace_id)
        .select_related("author")
        .defer("body")
        .order_by("-number")
    )


def document_version(*, document: Document, number: int) -> DocumentVersion | None:
    return (
        DocumentVersion.objects.filter(document=document, workspace_id=document.workspace_id, number=number)
        .select_related("author")
        .first()
    )


def folders_with_counts(*, workspace: Workspace) -> QuerySet[Folder]:
    return Folder.objects.filter(workspace=workspace).annotate(
        live=Count("documents", filter=Q(documents__deleted_at__isnull=True))
    )


def workspace_tags(*, workspace: Workspace) -> QuerySet[Tag]:
    return Tag.objects.filter(workspace=workspace)


def trash_count(*, workspace: Workspace) -> int:
    return Document.objects.filter(workspace=workspace, deleted_at__isnull=False).count()


def shared_document(token: str) -> Document | None:
    """The live document behind a public link, if the link is still on."""
    if not token:
        return None
    return Document.objects.filter(share_token=token, deleted_at__isnull=True).select_related("workspace").first()

"""Documents: Markdown texts of a workspace, in folders and with tags, whose every save is a
version (saves by the same person within `COALESCE_MINUTES` update that person's last version
instead of adding one), deleted to a trash for `TRASH_DAYS` days.

`Document.version` grows by one with every save; a save names the version it was based on and
is refused when another save came first (`VersionConflict`), never silently overwriting it.
Each `DocumentVersion` row is the text as of the save numbered `number` (a coalesced row takes
the number of the latest save it covers, so the numbers in a history may skip)."""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet

TRASH_DAYS = 30
COALESCE_MINUTES = 5
MAX_TITLE = 200
MAX_BODY = 500_000  # characters
_MARKS = re.compile(r"(^|\s)#{1,6}\s|[*_`>|~]|^\s*[-+]\s|\[|\]\([^)]*\)|!\[|-{3,}", re.MULTILINE)


class Folder(WorkspaceOwnedModel):
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = [Lower("name"), "id"]
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="documents_folder_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Tag(WorkspaceOwnedModel):
    name = models.CharField(max_length=50)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = [Lower("name"), "id"]
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="documents_tag_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class DocumentQuerySet(WorkspaceScopedQuerySet):
    def live(self) -> DocumentQuerySet:
        return self.filter(deleted_at__isnull=True)

    def trashed(self) -> DocumentQuerySet:
        return self.filter(deleted_at__isnull=False)


class Document(WorkspaceOwnedModel):
    title = models.CharField(max_length=MAX_TITLE)
    body = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents")
    tags = models.ManyToManyField(Tag, blank=True, related_name="documents")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A read-only public link (`/d/<token>/`) while set; the owner (or an admin) revokes it.
    share_token = models.CharField(max_length=43, null=True, blank=True, unique=True, editable=False)

    objects = DocumentQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "deleted_at", "-updated_at"], name="documents_ws_live_updated"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def excerpt(self) -> str:
        """The start of the text as plain words (Markdown marks left out), for lists."""
        text = _MARKS.sub(" ", self.body[:600])
        return " ".join(text.split())[:200]

    @property
    def in_trash(self) -> bool:
        return self.deleted_at is not None

    @staticmethod
    def new_share_token() -> str:
        return secrets.token_urlsafe(32)


class DocumentVersion(WorkspaceOwnedModel):
    class Source(models.TextChoices):
        CREATE = "create", "Created"
        EDIT = "edit", "Edited"
        AI = "ai", "AI writer"
        RESTORE = "restore", "Restored"
        MERGE = "merge", "Merged"

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=MAX_TITLE)
    body = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.EDIT)
    # The model that wrote it (the AI writer), as shown to users.
    model_label = models.CharField(max_length=100, blank=True)
    # The version a restore brought back.
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    saved_at = models.DateTimeField(default=timezone.now)  # the last save it covers

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["document_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="documents_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} v{self.number}"

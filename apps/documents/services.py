"""Documents: create, save (a version per save, coalesced per person; a stale save refused),
restore a version, organise (folders, tags), trash and restore, duplicate, share a read-only
link. Every service checks the acting user's role in the document's workspace:

- members (any role with `Perm.USE`) read, create and edit every document of the workspace,
  and move their own to the trash;
- owners and admins (`Perm.MANAGE_CONTENT`) also trash, delete for good and share or unshare
  other people's documents.

Deletes, restores (from the trash or of a version) and sharing are audited."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.documents.exceptions import DocumentError, DocumentLimitReached, VersionConflict
from apps.documents.models import (
    COALESCE_MINUTES,
    MAX_BODY,
    MAX_TITLE,
    TRASH_DAYS,
    Document,
    DocumentVersion,
    Folder,
    Tag,
)
from apps.workspaces.roles import Perm
from apps.workspaces.selectors import workspace_entitlements
from apps.workspaces.services import has_perm, require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

MAX_TAGS = 20
MAX_TAG = 50
MAX_FOLDER = 100
UNTITLED = "Untitled document"


# ---------------------------------------------------------------------------- cleaning


def _clean_name(value: str, *, limit: int, param: str, empty: str, too_long: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise DocumentError(empty, param=param)
    if len(value) > limit:
        raise DocumentError(too_long, param=param)
    return value


def _clean_title(title: str) -> str:
    too_long = f"The title is too long (at most {MAX_TITLE} characters)."
    return _clean_name(title, limit=MAX_TITLE, param="title", empty="Give the document a title.", too_long=too_long)


def _clean_body(body: str) -> str:
    body = (body or "").replace("\r\n", "\n").replace("\x00", "")
    if len(body) > MAX_BODY:
        raise DocumentError(f"The document is too long (at most {MAX_BODY:,} characters).", param="body")
    return body


def tag_names(text: str | Iterable[str]) -> list[str]:
    """Tag names from `"a, b"` or a list: trimmed, without duplicates (case-insensitive)."""
    raw = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for name in raw:
        name = " ".join(str(name).split())
        if not name:
            continue
        if len(name) > MAX_TAG:
            raise DocumentError(f"A tag is at most {MAX_TAG} characters.", param="tags")
        if name.lower() not in {n.lower() for n in names}:
            names.append(name)
    if len(names) > MAX_TAGS:
        raise DocumentError(f"At most {MAX_TAGS} tags per document.", param="tags")
    return names


def _tags(workspace: Workspace, names: list[str]) -> list[Tag]:
    existing = {t.name.lower(): t for t in Tag.objects.filter(workspace=workspace)}
    tags = []
    for name in names:
        tag = existing.get(name.lower())
        if tag is None:
            tag, _ = Tag.objects.get_or_create(workspace=workspace, name__iexact=name, defaults={"name": name})
        tags.append(tag)
    return tags


def _folder_of(workspace: Workspace, folder: Folder | None) -> Folder | None:
    if folder is not None and folder.workspace_id != workspace.pk:
        raise DocumentError("That folder is not in this workspace.", param="folder")
    return folder


def _check_limit(workspace: Workspace) -> None:
    entitlements = workspace_entitlements(workspace)
    limit = entitlements.max_documents
    if limit is not None and Document.objects.filter(workspace=workspace).count() >= limit:
        plan = f" on the {entitlements.plan_name} plan" if entitlements.plan_name else ""
        raise DocumentLimitReached(
            f"This workspace has reached its limit of {limit} documents{plan}. "
            "Delete some (and empty the trash) or upgrade the plan."
        )


def may_manage_content(*, workspace: Workspace, user: User) -> bool:
    return has_perm(workspace=workspace, user=user, perm=Perm.MANAGE_CONTENT)


def _require_owner_or_manager(document: Document, user: User, what: str) -> None:
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    if document.owner_id != user.pk and not may_manage_content(workspace=document.workspace, user=user):
        raise DocumentError(
            f"Only the document's owner or a workspace admin can {what}.", param="document", status_code=403
        )


def _locked(document: Document) -> Document:
    return Document.objects.select_for_update().get(pk=document.pk)


# ---------------------------------------------------------------------------- create and save


@transaction.atomic(durable=True)
def document_create(
    *,
    workspace: Workspace,
    user: User,
    title: str = UNTITLED,
    body: str = "",
    folder: Folder | None = None,
    tags: str | Iterable[str] = (),
    source: str = DocumentVersion.Source.CREATE,
    model_label: str = "",
) -> Document:
    """A new document owned by `user`, its first version numbered 1."""
    require_perm(workspace=workspace, user=user, perm=Perm.USE)
    _check_limit(workspace)
    now = timezone.now()
    document = Document.objects.create(
        workspace=workspace,
        title=_clean_title(title),
        body=_clean_body(body),
        folder=_folder_of(workspace, folder),
        owner=user,
        last_editor=user,
        created_at=now,
        updated_at=now,
    )
    document.tags.set(_tags(workspace, tag_names(tags)))
    DocumentVersion.objects.create(
        workspace=workspace,
        document=document,
        number=1,
        title=document.title,
        body=document.body,
        author=user,
        source=source,
        model_label=model_label,
        created_at=now,
        saved_at=now,
    )
    return document


def _save(
    document: Document,
    *,
    user: User | None,
    title: str,
    body: str,
    source: str,
    model_label: str = "",
    restored_from: int | None = None,
    now: datetime,
) -> Document:
    """Write the locked `document`'s new text as its next version (coalesced into the same
    person's last edit when that began less than `COALESCE_MINUTES` ago)."""
    document.version += 1
    latest = DocumentVersion.objects.filter(document=document).order_by("-number").first()
    coalesce = (
        source == DocumentVersion.Source.EDIT
        and latest is not None
        and latest.source == DocumentVersion.Source.EDIT
        and user is not None
        and latest.author_id == user.pk
        and now - latest.created_at < timedelta(minutes=COALESCE_MINUTES)
    )
    if coalesce:
        assert latest is not None
        DocumentVersion.objects.filter(pk=latest.pk).update(
            number=document.version, title=title, body=body, saved_at=now
        )
    else:
        DocumentVersion.objects.create(
            workspace_id=document.workspace_id,
            document=document,
            number=document.version,
            title=title,
            body=body,
            author=user,
            source=source,
            model_label=model_label,
            restored_from=restored_from,
            created_at=now,
            saved_at=now,
        )
    document.title, document.body = title, body
    document.last_editor = user
    document.updated_at = now
    document.save(update_fields=["title", "body", "version", "last_editor", "updated_at"])
    return document


@transaction.atomic(durable=True)
def document_save(
    *,
    document: Document,
    user: User,
    base_version: int,
    title: str | None = None,
    body: str | None = None,
    source: str = DocumentVersion.Source.EDIT,
    model_label: str = "",
    now: datetime | None = None,
) -> Document:
    """Save a new title and/or body written on top of version `base_version`. Refused with
    `VersionConflict` when another save came after it (nothing is written). A save that changes
    nothing changes nothing (no version). Returns the document as saved."""
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    locked = _locked(document)
    if locked.in_trash:
        raise DocumentError("This document is in the trash. Restore it to edit it.", param="document")
    if base_version != locked.version:
        raise VersionConflict(current_version=locked.version, base_version=base_version)
    new_title = _clean_title(title) if title is not None else locked.title
    new_body = _clean_body(body) if body is not None else locked.body
    if new_title == locked.title and new_body == locked.body:
        return locked
    return _save(
        locked,
        user=user,
        title=new_title,
        body=new_body,
        source=source,
        model_label=model_label,
        now=now or timezone.now(),
    )


@transaction.atomic(durable=True)
def document_version_restore(
    *, document: Document, number: int, user: User, base_version: int | None = None
) -> Document:
    """Bring version `number` back as a new version (the history keeps everything)."""
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    locked = _locked(document)
    if locked.in_trash:
        raise DocumentError("This document is in the trash. Restore it first.", param="document")
    if base_version is not None and base_version != locked.version:
        raise VersionConflict(current_version=locked.version, base_version=base_version)
    version = DocumentVersion.objects.filter(document=locked, number=number).first()
    if version is None:
        raise DocumentError("There is no such version of this document.", param="version", status_code=404)
    if version.number == locked.version:
        raise DocumentError("This is already the current version.", param="version")
    _save(
        locked,
        user=user,
        title=version.title,
        body=version.body,
        source=DocumentVersion.Source.RESTORE,
        restored_from=version.number,
        now=timezone.now(),
    )
    audit_record(
        actor=user,
        action="document.version_restore",
        target=locked,
        workspace=locked.workspace,
        metadata={"restored": version.number, "version": locked.version},
    )
    return locked


@transaction.atomic(durable=True)
def document_organise(
    *,
    document: Document,
    user: User,
    folder: Folder | None | object = ...,
    tags: str | Iterable[str] | None = None,
) -> Document:
    """Move the document to `folder` (None: out of any folder) and/or set its tags. Not a
    version: the text does not change."""
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    if folder is not ...:
        document.folder = _folder_of(document.workspace, folder)  # type: ignore[arg-type]
        Document.objects.filter(pk=document.pk).update(folder=document.folder)
    if tags is not None:
        document.tags.set(_tags(document.workspace, tag_names(tags)))
    return document


@transaction.atomic(durable=True)
def document_duplicate(*, document: Document, user: User) -> Document:
    """A copy (title "Copy of …", same folder and tags) owned by `user`, with a fresh history."""
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    _check_limit(document.workspace)
    document = Document.objects.select_related("workspace", "folder").get(pk=document.pk)  # as last saved
    now = timezone.now()
    copy = Document.objects.create(
        workspace=document.workspace,
        title=f"Copy of {document.title}"[:MAX_TITLE],
        body=document.body,
        folder=document.folder,
        owner=user,
        last_editor=user,
        created_at=now,
        updated_at=now,
    )
    copy.tags.set(document.tags.all())
    DocumentVersion.objects.create(
        workspace=document.workspace,
        document=copy,
        number=1,
        title=copy.title,
        body=copy.body,
        author=user,
        source=DocumentVersion.Source.CREATE,
        created_at=now,
        saved_at=now,
    )
    return copy


# ---------------------------------------------------------------------------- trash


@transaction.atomic(durable=True)
def document_trash(*, document: Document, user: User) -> Document:
    """Move to the trash (restorable for `TRASH_DAYS` days); a shared link stops working."""
    _require_owner_or_manager(document, user, "delete it")
    locked = _locked(document)
    if locked.in_trash:
        return locked
    locked.deleted_at = timezone.now()
    locked.deleted_by = user
    locked.share_token = None
    locked.save(update_fields=["deleted_at", "deleted_by", "share_token"])
    audit_record(actor=user, action="document.trash", target=locked, workspace=locked.workspace)
    return locked


@transaction.atomic(durable=True)
def document_untrash(*, document: Document, user: User) -> Document:
    require_perm(workspace=document.workspace, user=user, perm=Perm.USE)
    locked = _locked(document)
    if not locked.in_trash:
        return locked
    locked.deleted_at = None
    locked.deleted_by = None
    locked.save(update_fields=["deleted_at", "deleted_by"])
    audit_record(actor=user, action="document.restore", target=locked, workspace=locked.workspace)
    return locked


@transaction.atomic(durable=True)
def document_delete(*, document: Document, user: User) -> None:
    """Delete a document in the trash for good, with its history."""
    _require_owner_or_manager(document, user, "delete it")
    if not document.in_trash:
        raise DocumentError("Move the document to the trash first.", param="document")
    audit_record(
        actor=user,
        action="document.delete",
        target=document,
        workspace=document.workspace,
        metadata={"title": document.title},
    )
    document.delete()


def documents_purge_trash(*, now: datetime | None = None) -> int:
    """Delete the documents that have been in the trash for `TRASH_DAYS` days (the periodic
    task). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=TRASH_DAYS)
    purged = 0
    for document in Document.objects.filter(deleted_at__lt=cutoff).select_related("workspace").iterator():
        with transaction.atomic():
            audit_record(
                actor=None,
                action="document.purge",
                target=document,
                workspace=document.workspace,
                metadata={"title": document.title, "trashed_at": document.deleted_at.isoformat()},
            )
            document.delete()
        purged += 1
    return purged


# ---------------------------------------------------------------------------- sharing


@transaction.atomic(durable=True)
def document_share(*, document: Document, user: User, shared: bool) -> Document:
    """Turn the read-only public link on (a new unguessable address) or off."""
    _require_owner_or_manager(document, user, "share it" if shared else "stop sharing it")
    locked = _locked(document)
    if locked.in_trash:
        raise DocumentError("A document in the trash cannot be shared.", param="document")
    if shared == (locked.share_token is not None):
        return locked
    locked.share_token = Document.new_share_token() if shared else None
    locked.save(update_fields=["share_token"])
    audit_record(
        actor=user,
        action="document.share" if shared else "document.unshare",
        target=locked,
        workspace=locked.workspace,
    )
    return locked


# ---------------------------------------------------------------------------- folders


def _clean_folder_name(name: str) -> str:
    too_long = f"A folder name is at most {MAX_FOLDER} characters."
    return _clean_name(name, limit=MAX_FOLDER, param="name", empty="Give the folder a name.", too_long=too_long)


def _unique_folder(workspace: Workspace, name: str, exclude: int | None = None) -> None:
    clash = Folder.objects.filter(workspace=workspace, name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise DocumentError("A folder with that name already exists.", param="name")


@transaction.atomic(durable=True)
def folder_create(*, workspace: Workspace, user: User, name: str) -> Folder:
    require_perm(workspace=workspace, user=user, perm=Perm.USE)
    name = _clean_folder_name(name)
    _unique_folder(workspace, name)
    return Folder.objects.create(workspace=workspace, name=name, created_by=user)


@transaction.atomic(durable=True)
def folder_rename(*, folder: Folder, user: User, name: str) -> Folder:
    require_perm(workspace=folder.workspace, user=user, perm=Perm.USE)
    folder.name = _clean_folder_name(name)
    _unique_folder(folder.workspace, folder.name, exclude=folder.pk)
    folder.save(update_fields=["name"])
    return folder


@transaction.atomic(durable=True)
def folder_delete(*, folder: Folder, user: User) -> int:
    """Delete the folder; its documents stay, out of any folder. Returns how many it held."""
    require_perm(workspace=folder.workspace, user=user, perm=Perm.USE)
    held = Document.objects.filter(folder=folder).update(folder=None)
    audit_record(
        actor=user, action="document.folder_delete", target=folder, workspace=folder.workspace, metadata={"held": held}
    )
    folder.delete()
    return held

"""Documents: every save a version (coalesced per person for a few minutes), a stale save
refused without writing anything, restore as a new version, trash and purge, roles, limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.documents import services, tasks
from apps.documents.exceptions import DocumentError, DocumentLimitReached, VersionConflict
from apps.documents.models import COALESCE_MINUTES, TRASH_DAYS, Document, DocumentVersion, Folder, Tag
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.services import workspace_entitlements_set
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def new(team: Team, title: str = "Plan", body: str = "one", **kwargs: Any) -> Document:
    return services.document_create(workspace=team.workspace, user=team.member, title=title, body=body, **kwargs)


def history(document: Document) -> list[tuple[int, str, str]]:
    return list(
        DocumentVersion.objects.filter(document=document)
        .order_by("number")
        .values_list("number", "body", "author__email")
    )


def age_latest(document: Document, minutes: float) -> None:
    latest = DocumentVersion.objects.filter(document=document).order_by("-number").first()
    assert latest is not None
    DocumentVersion.objects.filter(pk=latest.pk).update(created_at=latest.created_at - timedelta(minutes=minutes))


# ---------------------------------------------------------------------------- versions


def test_a_new_document_is_version_one_owned_by_its_writer(alpha: Team) -> None:
    document = new(alpha, title="  Launch   plan ", tags="launch, Q3, launch")
    assert (document.title, document.version, document.owner, document.last_editor) == (
        "Launch plan",
        1,
        alpha.member,
        alpha.member,
    )
    assert history(document) == [(1, "one", "alpha-member@example.com")]
    assert [t.name for t in document.tags.all()] == ["launch", "Q3"]  # sorted case-insensitively
    assert DocumentVersion.objects.get(document=document).source == DocumentVersion.Source.CREATE


def test_saves_by_the_same_person_within_minutes_are_one_version(alpha: Team) -> None:
    document = new(alpha)
    saved = services.document_save(document=document, user=alpha.member, base_version=1, body="two")
    assert saved.version == 2
    saved = services.document_save(document=document, user=alpha.member, base_version=2, body="three")
    # The create is its own version; the two edits made one, numbered as the latest save.
    assert saved.version == 3
    assert history(document) == [(1, "one", "alpha-member@example.com"), (3, "three", "alpha-member@example.com")]


def test_a_later_save_or_another_person_starts_a_new_version(alpha: Team) -> None:
    document = new(alpha)
    services.document_save(document=document, user=alpha.member, base_version=1, body="two")
    age_latest(document, COALESCE_MINUTES + 1)
    services.document_save(document=document, user=alpha.member, base_version=2, body="three")
    services.document_save(document=document, user=alpha.admin, base_version=3, body="four", title="Plan B")
    document.refresh_from_db()
    assert (document.version, document.body, document.title, document.last_editor) == (4, "four", "Plan B", alpha.admin)
    assert [n for n, _, _ in history(document)] == [1, 2, 3, 4]
    assert history(document)[-1] == (4, "four", "alpha-admin@example.com")


def test_a_save_that_changes_nothing_adds_no_version(alpha: Team) -> None:
    document = new(alpha)
    saved = services.document_save(document=document, user=alpha.member, base_version=1, body="one", title="Plan")
    assert saved.version == 1
    assert DocumentVersion.objects.filter(document=document).count() == 1


def test_a_save_based_on_an_old_version_is_refused_and_writes_nothing(alpha: Team) -> None:
    document = new(alpha)
    services.document_save(document=document, user=alpha.admin, base_version=1, body="theirs")
    with pytest.raises(VersionConflict) as refused:
        services.document_save(document=document, user=alpha.member, base_version=1, body="mine")
    assert (refused.value.status_code, refused.value.code) == (409, "version_conflict")
    assert refused.value.details() == {"current_version": 2, "base_version": 1}
    document.refresh_from_db()
    assert (document.body, document.version) == ("theirs", 2)
    assert "mine" not in [body for _, body, _ in history(document)]


def test_restoring_a_version_makes_a_new_one_and_is_audited(alpha: Team) -> None:
    document = new(alpha)
    services.document_save(document=document, user=alpha.admin, base_version=1, body="two", title="Renamed")
    restored = services.document_version_restore(document=document, number=1, user=alpha.member)
    assert (restored.version, restored.body, restored.title) == (3, "one", "Plan")
    latest = DocumentVersion.objects.get(document=document, number=3)
    assert (latest.source, latest.restored_from, latest.author) == ("restore", 1, alpha.member)
    event = AuditEvent.objects.get(action="document.version_restore")
    assert event.metadata == {"restored": 1, "version": 3}
    with pytest.raises(DocumentError, match="already the current"):
        services.document_version_restore(document=document, number=3, user=alpha.member)
    with pytest.raises(DocumentError, match="no such version") as missing:
        services.document_version_restore(document=document, number=99, user=alpha.member)
    assert missing.value.status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "   "}, "Give the document a title"),
        ({"title": "x" * 201}, "title is too long"),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, "At most 20 tags"),
        ({"tags": "x" * 51}, "at most 50 characters"),
    ],
)
def test_bad_input_is_refused_with_the_field(alpha: Team, fields: dict[str, str], message: str) -> None:
    with pytest.raises(DocumentError, match=message) as refused:
        services.document_create(workspace=alpha.workspace, user=alpha.member, **fields)  # type: ignore[arg-type]
    assert refused.value.param in {"title", "tags"}
    assert not Document.objects.exists()


def test_someone_outside_the_workspace_can_do_nothing(alpha: Team, beta: Team) -> None:
    document = new(alpha)
    with pytest.raises(WorkspacePermissionDenied):
        services.document_save(document=document, user=beta.owner, base_version=1, body="x")
    with pytest.raises(WorkspacePermissionDenied):
        services.document_create(workspace=alpha.workspace, user=beta.owner)
    other = services.folder_create(workspace=beta.workspace, user=beta.owner, name="Theirs")
    with pytest.raises(DocumentError, match="not in this workspace"):
        services.document_organise(document=document, user=alpha.member, folder=other)


# ---------------------------------------------------------------------------- organise


def test_folders_and_tags(alpha: Team) -> None:
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name=" Drafts ")
    with pytest.raises(DocumentError, match="already exists"):
        services.folder_create(workspace=alpha.workspace, user=alpha.member, name="drafts")
    document = new(alpha, folder=folder)
    services.document_organise(document=document, user=alpha.member, tags=["Ideas", "ideas", "Later"])
    assert [t.name for t in document.tags.order_by("name")] == ["Ideas", "Later"]
    services.folder_rename(folder=folder, user=alpha.member, name="Final")
    assert services.folder_delete(folder=folder, user=alpha.member) == 1
    document.refresh_from_db()
    assert document.folder is None
    assert not Folder.objects.exists()
    assert Tag.objects.filter(workspace=alpha.workspace).count() == 2
    assert document.version == 1  # organising is not an edit


def test_duplicate_copies_text_folder_and_tags_with_a_fresh_history(alpha: Team) -> None:
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="Drafts")
    document = new(alpha, folder=folder, tags="a, b")
    services.document_save(document=document, user=alpha.member, base_version=1, body="two")
    copy = services.document_duplicate(document=document, user=alpha.admin)
    assert (copy.title, copy.body, copy.folder, copy.owner, copy.version) == (
        "Copy of Plan",
        "two",
        folder,
        alpha.admin,
        1,
    )
    assert sorted(t.name for t in copy.tags.all()) == ["a", "b"]
    assert history(copy) == [(1, "two", "alpha-admin@example.com")]


# ---------------------------------------------------------------------------- trash


def test_members_trash_their_own_documents_admins_anyones(alpha: Team) -> None:
    mine = new(alpha)
    theirs = services.document_create(workspace=alpha.workspace, user=alpha.admin, title="Admin's")
    with pytest.raises(DocumentError, match="owner or a workspace admin") as refused:
        services.document_trash(document=theirs, user=alpha.member)
    assert refused.value.status_code == 403
    services.document_trash(document=mine, user=alpha.member)
    services.document_trash(document=Document.objects.get(pk=theirs.pk), user=alpha.owner)
    assert Document.objects.filter(deleted_at__isnull=False).count() == 2
    assert list(
        AuditEvent.objects.filter(action="document.trash").order_by("id").values_list("actor__email", flat=True)
    ) == [
        "alpha-member@example.com",
        "alpha-owner@example.com",
    ]


def test_a_trashed_document_cannot_be_edited_until_restored(alpha: Team) -> None:
    document = services.document_trash(document=new(alpha), user=alpha.member)
    with pytest.raises(DocumentError, match="in the trash"):
        services.document_save(document=document, user=alpha.member, base_version=1, body="x")
    restored = services.document_untrash(document=document, user=alpha.member)
    assert restored.deleted_at is None
    services.document_save(document=restored, user=alpha.member, base_version=1, body="x")
    assert AuditEvent.objects.filter(action="document.restore").count() == 1


def test_delete_for_good_only_from_the_trash(alpha: Team) -> None:
    document = new(alpha)
    with pytest.raises(DocumentError, match="trash first"):
        services.document_delete(document=document, user=alpha.member)
    services.document_delete(document=services.document_trash(document=document, user=alpha.member), user=alpha.member)
    assert not Document.objects.exists()
    assert not DocumentVersion.objects.exists()
    assert AuditEvent.objects.get(action="document.delete").metadata == {"title": "Plan"}


def test_the_trash_is_emptied_after_thirty_days(alpha: Team) -> None:
    old, recent, live = new(alpha, title="Old"), new(alpha, title="Recent"), new(alpha, title="Live")
    for document in (old, recent):
        services.document_trash(document=document, user=alpha.member)
    Document.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=TRASH_DAYS, minutes=1))

    assert tasks.purge_trash() == {"documents": 1}

    assert sorted(Document.objects.values_list("title", flat=True)) == ["Live", "Recent"]
    assert AuditEvent.objects.get(action="document.purge").metadata["title"] == "Old"
    assert tasks.purge_trash() == {"documents": 0}
    assert live.pk


# ---------------------------------------------------------------------------- sharing, limits


def test_sharing_makes_an_unguessable_link_owner_or_admin_only_and_audited(alpha: Team) -> None:
    document = new(alpha)
    other = services.document_create(workspace=alpha.workspace, user=alpha.admin, title="Admin's")
    with pytest.raises(DocumentError, match="owner or a workspace admin"):
        services.document_share(document=other, user=alpha.member, shared=True)
    shared = services.document_share(document=document, user=alpha.member, shared=True)
    assert shared.share_token is not None
    assert len(shared.share_token) >= 40
    trashed = services.document_trash(document=shared, user=alpha.member)
    assert trashed.share_token is None  # the trash ends the link
    assert list(
        AuditEvent.objects.filter(action__startswith="document.").order_by("id").values_list("action", flat=True)
    ) == [
        "document.share",
        "document.trash",
    ]


def test_the_plans_document_limit_applies_trash_included(alpha: Team) -> None:
    workspace_entitlements_set(
        workspace=alpha.workspace, entitlements=Entitlements(plan_code="free", plan_name="Free", max_documents=2)
    )
    first = new(alpha, title="One")
    new(alpha, title="Two")
    with pytest.raises(DocumentLimitReached, match="limit of 2 documents on the Free plan") as refused:
        new(alpha, title="Three")
    assert (refused.value.status_code, refused.value.code) == (403, "document_limit_reached")
    with pytest.raises(DocumentLimitReached):
        services.document_duplicate(document=first, user=alpha.member)
    services.document_delete(document=services.document_trash(document=first, user=alpha.member), user=alpha.member)
    new(alpha, title="Three")

"""The document pages: list with search and filters (bounded queries), the editor's saves (JSON
for the page's script, 409 on a stale save; a plain form gets the merge view), preview
sanitised, history, diff and restore, trash, folders, the public link, and another
workspace's ids answering 404."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.documents import services
from apps.documents.models import Document, DocumentVersion, Folder
from tests.conftest import Team

pytestmark = pytest.mark.django_db

FETCH = {"X-Requested-With": "fetch"}


def new(team: Team, title: str = "Plan", body: str = "one", **kwargs: Any) -> Document:
    return services.document_create(workspace=team.workspace, user=team.member, title=title, body=body, **kwargs)


@pytest.fixture
def client(client_for: Any, alpha: Team) -> Any:
    return client_for(alpha.member, alpha.workspace)


def edit_url(document: Document) -> str:
    return reverse("documents:edit", args=[document.pk])


# ---------------------------------------------------------------------------- list


def test_the_list_starts_empty_and_new_opens_the_editor(client: Any, alpha: Team) -> None:
    page = client.get(reverse("documents:list"))
    assert page.status_code == 200
    assert b'data-testid="no-documents"' in page.content
    response = client.post(reverse("documents:new"), {"title": ""})
    document = Document.objects.get()
    assert response.status_code == 302
    assert response["Location"] == edit_url(document)
    assert (document.title, document.owner) == ("Untitled document", alpha.member)


def test_the_list_searches_and_filters(client: Any, alpha: Team) -> None:
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="Drafts")
    new(alpha, title="Quarterly report", body="revenue grew", folder=folder, tags="finance")
    new(alpha, title="Team offsite", body="agenda and the revenue targets")
    services.document_create(workspace=alpha.workspace, user=alpha.admin, title="Hiring", body="roles")

    def titles(**params: str) -> list[str]:
        response = client.get(reverse("documents:list"), params)
        assert response.status_code == 200
        return [d.title for d in response.context["documents"]]

    assert titles() == ["Hiring", "Team offsite", "Quarterly report"]
    assert set(titles(q="revenue")) == {"Quarterly report", "Team offsite"}
    assert titles(q="quarterly") == ["Quarterly report"]
    assert titles(folder=str(folder.pk)) == ["Quarterly report"]
    assert titles(folder="none") == ["Hiring", "Team offsite"]
    tag = alpha.workspace.tags.get()
    assert titles(tag=str(tag.pk)) == ["Quarterly report"]
    assert titles(author=str(alpha.admin.pk)) == ["Hiring"]
    assert titles(q="nothing-like-this") == []
    bad = client.get(reverse("documents:list"), {"folder": "999999"})
    assert bad.status_code == 400
    assert b"Unknown folder" in bad.content


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ranking is PostgreSQL full-text search")
def test_on_postgresql_a_title_match_ranks_above_a_body_match(client: Any, alpha: Team) -> None:
    new(alpha, title="Notes", body="the budget for the budget meeting about budget")
    new(alpha, title="Budget", body="numbers")
    response = client.get(reverse("documents:list"), {"q": "budget"})
    assert [d.title for d in response.context["documents"]] == ["Budget", "Notes"]


def test_the_list_pins_its_queries(client: Any, alpha: Team) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("documents:list")).status_code == 200
        return len(ctx.captured_queries)

    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="F")
    new(alpha, tags="a", folder=folder)
    few = count()
    for n in range(30):
        new(alpha, title=f"Doc {n}", tags=f"t{n}, shared", folder=folder)
    assert count() <= few
    page = client.get(reverse("documents:list"))
    assert len(page.context["documents"]) == 25
    assert b'data-testid="pagination"' in page.content


# ---------------------------------------------------------------------------- editing


def test_the_editor_saves_as_json_for_the_page(client: Any, alpha: Team) -> None:
    document = new(alpha)
    assert client.get(edit_url(document)).status_code == 200
    response = client.post(
        edit_url(document), {"base_version": 1, "title": "Plan v2", "body": "# Two\n\ntext"}, headers=FETCH
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2
    document.refresh_from_db()
    assert (document.title, document.body, document.last_editor) == ("Plan v2", "# Two\n\ntext", alpha.member)


def test_a_stale_save_is_409_as_json_and_a_merge_view_as_a_page(client_for: Any, client: Any, alpha: Team) -> None:
    document = new(alpha, body="line one\nline two")
    admin = client_for(alpha.admin, alpha.workspace)
    assert (
        admin.post(edit_url(document), {"base_version": 1, "title": "Plan", "body": "line one\nTHEIR line"}).status_code
        == 302
    )

    stale = client.post(
        edit_url(document), {"base_version": 1, "title": "Plan", "body": "line one\nMY line"}, headers=FETCH
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == {
        "message": "Someone saved this document after you opened it. Your text was not saved.",
        "code": "version_conflict",
        "current_version": 2,
        "base_version": 1,
    }

    page = client.post(edit_url(document), {"base_version": 1, "title": "Plan", "body": "line one\nMY line"})
    assert page.status_code == 409
    html = page.content.decode()
    assert 'data-testid="conflict"' in html
    assert "<del>THEIR</del>" in html
    assert "<ins>MY</ins>" in html
    assert 'name="base_version"\n           value="2"' in html or 'value="2"' in html
    document.refresh_from_db()
    assert document.body == "line one\nTHEIR line"  # nothing was overwritten
    # Saving the merge is a new version, marked as a merge.
    merged = client.post(
        edit_url(document), {"base_version": 2, "title": "Plan", "body": "line one\nOUR line", "merge": "1"}
    )
    assert merged.status_code == 302
    assert DocumentVersion.objects.get(document=document, number=3).source == "merge"


def test_bad_saves_say_what_is_wrong(client: Any, alpha: Team) -> None:
    document = new(alpha)
    missing = client.post(edit_url(document), {"title": "x", "body": "y"}, headers=FETCH)
    assert missing.status_code == 400
    assert "Base version" in missing.json()["error"]["message"]
    blank = client.post(edit_url(document), {"base_version": 1, "title": "  ", "body": "y"}, headers=FETCH)
    assert blank.status_code == 400
    page = client.post(edit_url(document), {"base_version": "x", "title": "t"})
    assert page.status_code == 400


def test_the_preview_is_sanitised_markdown(client: Any, alpha: Team) -> None:
    document = new(alpha)
    response = client.post(
        reverse("documents:preview", args=[document.pk]),
        {
            "body": "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>\n\n"
            "![logo](/static/favicon.svg)"
        },
        headers=FETCH,
    )
    html = response.content.decode()
    assert "<h1>Title</h1>" in html
    assert "<table>" in html
    assert "<script" not in html
    assert '<img alt="logo" src="/static/favicon.svg">' in html


def test_folder_and_tags_from_the_editor(client: Any, alpha: Team) -> None:
    document = new(alpha)
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="Drafts")
    response = client.post(
        reverse("documents:organise", args=[document.pk]), {"folder": str(folder.pk), "tags": "one, two"}
    )
    assert response.status_code == 302
    document.refresh_from_db()
    assert document.folder == folder
    assert sorted(t.name for t in document.tags.all()) == ["one", "two"]


# ---------------------------------------------------------------------------- history


def test_history_version_diff_and_restore(client: Any, alpha: Team) -> None:
    document = new(alpha, body="alpha\nbeta\ngamma")
    services.document_save(document=document, user=alpha.admin, base_version=1, body="alpha\nBETA\ngamma\ndelta")
    history = client.get(reverse("documents:history", args=[document.pk]))
    assert history.status_code == 200
    assert [v.number for v in history.context["versions"]] == [2, 1]
    version = client.get(reverse("documents:version", args=[document.pk, 1]))
    assert b"<p>alpha\nbeta\ngamma</p>" in version.content
    diff = client.get(reverse("documents:diff", args=[document.pk]), {"from": 1, "to": 2})
    html = diff.content.decode()
    assert diff.context["diff"].added == 2
    assert diff.context["diff"].removed == 1
    assert "<del>beta</del>" in html
    assert "<ins>BETA</ins>" in html
    assert client.get(reverse("documents:diff", args=[document.pk]), {"from": "x"}).status_code == 400
    assert client.get(reverse("documents:diff", args=[document.pk]), {"from": 7}).status_code == 404
    restored = client.post(reverse("documents:version_restore", args=[document.pk, 1]))
    assert restored.status_code == 302
    document.refresh_from_db()
    assert (document.version, document.body) == (3, "alpha\nbeta\ngamma")


# ---------------------------------------------------------------------------- trash, folders, sharing


def test_trash_restore_and_delete_for_good(client: Any, alpha: Team) -> None:
    document = new(alpha)
    assert client.post(reverse("documents:trash_document", args=[document.pk])).status_code == 302
    assert client.get(edit_url(document)).status_code == 404
    trash = client.get(reverse("documents:trash"))
    assert [d.title for d in trash.context["documents"]] == ["Plan"]
    assert client.post(reverse("documents:untrash", args=[document.pk])).status_code == 302
    assert client.get(edit_url(document)).status_code == 200
    client.post(reverse("documents:trash_document", args=[document.pk]))
    assert client.post(reverse("documents:delete", args=[document.pk])).status_code == 302
    assert not Document.objects.exists()


def test_a_member_cannot_trash_someone_elses_document(client: Any, alpha: Team) -> None:
    theirs = services.document_create(workspace=alpha.workspace, user=alpha.admin, title="Admin's")
    response = client.post(reverse("documents:trash_document", args=[theirs.pk]))
    assert response.status_code == 403
    assert b"owner or a workspace admin" in response.content


def test_folders_from_the_list(client: Any, alpha: Team) -> None:
    response = client.post(reverse("documents:folder_new"), {"name": "Drafts"})
    folder = Folder.objects.get()
    assert response["Location"].endswith(f"?folder={folder.pk}")
    client.post(reverse("documents:folder_rename", args=[folder.pk]), {"name": "Final"})
    folder.refresh_from_db()
    assert folder.name == "Final"
    client.post(reverse("documents:folder_delete", args=[folder.pk]))
    assert not Folder.objects.exists()
    duplicate = client.post(reverse("documents:folder_new"), {"name": ""}, follow=True)
    assert b"Folder name" in duplicate.content


def test_a_public_link_shows_the_document_read_only_until_turned_off(client: Any, alpha: Team) -> None:
    document = new(alpha, body="**public** text")
    client.post(reverse("documents:share", args=[document.pk]), {"shared": "1"})
    document.refresh_from_db()
    assert document.share_token
    anonymous = client.__class__()
    url = reverse("documents:shared", args=[document.share_token])
    page = anonymous.get(url)
    assert page.status_code == 200
    assert b"<strong>public</strong> text" in page.content
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    assert b"data-document-editor" not in page.content
    client.post(reverse("documents:share", args=[document.pk]), {"shared": "0"})
    assert anonymous.get(url).status_code == 404


# ---------------------------------------------------------------------------- other workspaces


ROUTES_WITH_DOCUMENT = [
    ("get", "documents:edit"),
    ("post", "documents:edit"),
    ("post", "documents:preview"),
    ("post", "documents:organise"),
    ("post", "documents:duplicate"),
    ("post", "documents:trash_document"),
    ("post", "documents:untrash"),
    ("post", "documents:delete"),
    ("post", "documents:share"),
    ("get", "documents:history"),
    ("get", "documents:diff"),
]


@pytest.mark.outsider(
    "documents:list",
    "documents:new",
    "documents:trash",
    "documents:edit",
    "documents:preview",
    "documents:organise",
    "documents:duplicate",
    "documents:trash_document",
    "documents:untrash",
    "documents:delete",
    "documents:share",
    "documents:history",
    "documents:version",
    "documents:version_restore",
    "documents:diff",
    "documents:folder_new",
    "documents:folder_rename",
    "documents:folder_delete",
    "documents:shared",
)
def test_another_workspace_gets_404_and_sees_nothing(client_for: Any, alpha: Team, beta: Team) -> None:
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="Secret folder")
    document = new(alpha, title="Secret plan", body="secret", folder=folder)
    trashed = services.document_trash(document=new(alpha, title="Secret trash"), user=alpha.member)
    bob = client_for(beta.member, beta.workspace)
    for method, name in ROUTES_WITH_DOCUMENT:
        for target in (document, trashed):
            response = getattr(bob, method)(reverse(name, args=[target.pk]), {"base_version": 1, "title": "x"})
            assert response.status_code == 404, (name, target.title)
    for name in ("documents:version", "documents:version_restore"):
        method = bob.get if name == "documents:version" else bob.post
        assert method(reverse(name, args=[document.pk, 1])).status_code == 404
    for name in ("documents:folder_rename", "documents:folder_delete"):
        assert bob.post(reverse(name, args=[folder.pk]), {"name": "x"}).status_code == 404
    # Their own pages list nothing of Alpha's.
    for name in ("documents:list", "documents:trash"):
        page = bob.get(reverse(name))
        assert b"Secret" not in page.content
    assert bob.post(reverse("documents:new"), {"title": "Bob's"}).status_code == 302
    assert Document.objects.get(title="Bob's").workspace == beta.workspace
    assert bob.post(reverse("documents:folder_new"), {"name": "Secret folder"}).status_code == 302  # their own
    assert bob.get(reverse("documents:shared", args=["not-a-token"])).status_code == 404
    document.refresh_from_db()
    assert (document.title, document.body, document.version, document.deleted_at) == ("Secret plan", "secret", 1, None)
    assert json.loads(json.dumps(Folder.objects.filter(workspace=alpha.workspace).count())) == 1

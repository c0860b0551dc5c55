"""The account's data export carries the documents the user owns, with every version."""

from __future__ import annotations

import pytest

from apps.documents import services
from apps.documents.export_sections import export_documents
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def test_export_has_the_users_documents_with_their_versions(alpha: Team, beta: Team) -> None:
    folder = services.folder_create(workspace=alpha.workspace, user=alpha.member, name="Drafts")
    document = services.document_create(
        workspace=alpha.workspace, user=alpha.member, title="Mine", body="one", folder=folder, tags="a"
    )
    services.document_save(document=document, user=alpha.admin, base_version=1, body="two")
    services.document_create(workspace=alpha.workspace, user=alpha.admin, title="Not mine")
    services.document_create(workspace=beta.workspace, user=beta.member, title="Elsewhere")

    [exported] = export_documents(alpha.member)

    assert {k: exported[k] for k in ("title", "body", "folder", "tags", "version", "in_trash")} == {
        "title": "Mine",
        "body": "two",
        "folder": "Drafts",
        "tags": ["a"],
        "version": 2,
        "in_trash": False,
    }
    assert [(v["number"], v["body"], v["author"]) for v in exported["versions"]] == [
        (1, "one", "alpha-member@example.com"),
        (2, "two", "alpha-admin@example.com"),
    ]
    assert export_documents(beta.owner) == []

"""Two people saving the same version at the same moment, on PostgreSQL: one save wins, the
other is refused with a conflict; nothing is overwritten silently."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from apps.documents import services
from apps.documents.exceptions import VersionConflict
from apps.documents.models import Document, DocumentVersion
from tests.concurrency import run_together
from tests.conftest import Team

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite ignores select_for_update and serialises all writers, so no race can occur",
    ),
    pytest.mark.django_db(transaction=True),
]


def test_two_writers_on_one_version_one_wins_the_other_gets_a_conflict(alpha: Team) -> None:
    document = services.document_create(workspace=alpha.workspace, user=alpha.owner, title="Plan", body="base")
    for round_ in range(5):
        base = Document.objects.get(pk=document.pk).version

        def save(user: Any, text: str, base: int = base) -> Any:
            return lambda: services.document_save(
                document=Document.objects.get(pk=document.pk), user=user, base_version=base, body=text
            )

        results = run_together(save(alpha.member, f"member {round_}"), save(alpha.admin, f"admin {round_}"))
        conflicts = [r for r in results if isinstance(r, VersionConflict)]
        saved = [r for r in results if isinstance(r, Document)]
        assert len(conflicts) == 1, results
        assert len(saved) == 1, results
        current = Document.objects.get(pk=document.pk)
        assert current.version == base + 1
        assert current.body == saved[0].body
        assert conflicts[0].current_version == base + 1
    assert DocumentVersion.objects.filter(document=document).order_by("-number").first().body == current.body  # type: ignore[union-attr]

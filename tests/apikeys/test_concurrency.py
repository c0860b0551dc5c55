"""Races on one key, run for real on PostgreSQL: threads with their own connections, released
together by a barrier."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.apikeys.exceptions import ApiKeyCapReached
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_create, apikey_reserve, apikey_revoke, apikey_spent_units
from apps.audit.models import AuditEvent
from apps.credits.models import Reservation
from tests.concurrency import run_together
from tests.credits.helpers import assert_ledger_consistent
from tests.credits.usage_data import fund
from tests.factories import WorkspaceFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite ignores select_for_update and serialises all writers, so no race can occur",
    ),
    pytest.mark.django_db(transaction=True),
]

CREDIT = 10_000


def _key(*, daily_cap_units: int | None = None) -> ApiKey:
    workspace = WorkspaceFactory.create()
    fund(workspace, "1000")
    key, _ = apikey_create(
        workspace=workspace, acting_user=None, name="k", scopes=["chat"], daily_cap_units=daily_cap_units
    )
    return key


def test_parallel_calls_through_one_key_cannot_pass_its_cap_together():
    key = _key(daily_cap_units=10 * CREDIT)

    results = run_together(
        *(lambda i=i: apikey_reserve(key=key, units=3 * CREDIT, idempotency_key=f"call-{i}") for i in range(10))
    )

    held = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, ApiKeyCapReached)]
    assert (len(held), len(refused)) == (3, 7), results
    assert apikey_spent_units(key=key) == (9 * CREDIT, 9 * CREDIT)
    assert_ledger_consistent()


def test_parallel_revokes_revoke_once_and_write_one_audit_row():
    key = _key()

    results = run_together(*(lambda: apikey_revoke(key=ApiKey.objects.get(pk=key.pk), acting_user=None),) * 5)

    assert all(isinstance(r, ApiKey) and r.revoked_at is not None for r in results), results
    assert len({r.revoked_at for r in results}) == 1
    assert AuditEvent.objects.filter(action="apikey.revoke").count() == 1

"""Fulfilment under real concurrency (PostgreSQL): the same payment fulfilled by two workers at
once — a webhook and the success page's reconcile, or two deliveries of one event — grants once."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.billing.fulfilment import event_process
from apps.billing.models import Fulfilment, StripeEvent
from apps.billing.webhooks import event_record
from apps.credits.selectors import credits_balance
from tests.billing.conftest import event
from tests.billing.test_webhooks import pack_session
from tests.concurrency import run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite ignores select_for_update and serialises all writers, so no race can occur",
    ),
]


def test_webhook_and_reconcile_at_once_grant_once(alpha, catalogue):
    pack = catalogue["packs"]["small"]
    session = pack_session(alpha.workspace, pack)
    webhook = event_record(event("checkout.session.completed", session))
    reconcile = event_record(event("checkout.session.completed", session, event_id=f"reconcile_{session['id']}"))
    assert webhook is not None
    assert reconcile is not None

    results = run_together(
        lambda: event_process(event_id=webhook.pk).status,
        lambda: event_process(event_id=reconcile.pk).status,
    )

    assert results == ["processed", "processed"]
    assert Fulfilment.objects.filter(key=f"pack:{session['id']}").count() == 1
    assert credits_balance(workspace=alpha.workspace).available_units == pack.credit_units


def test_one_event_processed_by_two_workers_at_once_runs_once(alpha, catalogue):
    pack = catalogue["packs"]["medium"]
    stored = event_record(event("checkout.session.completed", pack_session(alpha.workspace, pack)))
    assert stored is not None

    run_together(lambda: event_process(event_id=stored.pk), lambda: event_process(event_id=stored.pk))

    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (StripeEvent.Status.PROCESSED, 1)
    assert credits_balance(workspace=alpha.workspace).available_units == pack.credit_units + pack.bonus_units

"""Races the account row lock must serialise, run for real on PostgreSQL: threads with their
own connections, released together by a barrier."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.credits import services
from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import CreditAccount, CreditGrant, LedgerEntry, Reservation, Source
from tests.concurrency import run_together
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import WorkspaceFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite ignores select_for_update and serialises all writers, so no race can occur",
    ),
    pytest.mark.django_db(transaction=True),
]

U = 10_000


def test_fifty_concurrent_calls_of_ten_credits_against_three_hundred_exactly_thirty_succeed():
    workspace = WorkspaceFactory.create()
    services.credits_grant(workspace=workspace, amount=200, source=Source.PURCHASED, idempotency_key="buy")
    services.credits_grant(
        workspace=workspace,
        amount=100,
        source=Source.SUBSCRIPTION,
        idempotency_key="plan",
        expires_at=timezone.now() + timedelta(days=30),
    )

    def call(i: int) -> Callable[[], Reservation]:
        def reserve_and_settle() -> Reservation:
            reservation = services.credits_reserve(workspace=workspace, amount=10, idempotency_key=f"call-{i}")
            return services.credits_settle(reservation=reservation, actual=10)

        return reserve_and_settle

    results = run_together(*(call(i) for i in range(50)))

    settled = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(settled) == 30, [r for r in results if not isinstance(r, (Reservation, InsufficientCredits))]
    assert len(refused) == 20
    assert all(r.status == Reservation.Status.SETTLED and r.charged_units == 10 * U for r in settled)
    assert all(e.requested_units == 10 * U and e.available_units < 10 * U for e in refused)
    account = CreditAccount.objects.get(workspace=workspace)
    assert (account.balance_units, account.held_units) == (0, 0)
    assert Reservation.objects.count() == 30
    assert_ledger_consistent()
    assert services.credits_reconcile(fix=False) == []


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_settle_release_and_sweeper_end_a_hold_exactly_once(round_):
    workspace = WorkspaceFactory.create()
    services.credits_grant(workspace=workspace, amount=10, source=Source.PURCHASED, idempotency_key="buy")
    reservation = services.credits_reserve(workspace=workspace, amount=4, idempotency_key="call")
    services.credits_checkpoint(reservation=reservation, delivered_units=1 * U)

    settle, release, sweep = run_together(
        lambda: services.credits_settle(reservation=reservation, actual=3),
        lambda: services.credits_release(reservation=reservation),
        lambda: services.credits_sweep(older_than=timedelta(0)),
    )
    assert isinstance(settle, Reservation), settle
    assert isinstance(release, Reservation), release
    assert isinstance(sweep, dict), sweep

    final = Reservation.objects.get(pk=reservation.pk)
    # Both callers were told the same, first outcome.
    assert (settle.status, settle.charged_units) == (release.status, release.charged_units)
    assert (settle.status, settle.charged_units) == (final.status, final.charged_units)
    swept = sum(sweep.values())
    assert swept == (1 if final.outcome_reason == services.SWEEP_REASON else 0)
    charges: dict[str, dict[str, int]] = {
        "": {Reservation.Status.SETTLED: 3 * U, Reservation.Status.RELEASED: 0},
        services.SWEEP_REASON: {Reservation.Status.SETTLED: 1 * U},
    }
    expected_charge = charges[final.outcome_reason][final.status]
    assert final.charged_units == expected_charge
    account = CreditAccount.objects.get(workspace=workspace)
    assert (account.balance_units, account.held_units) == (10 * U - expected_charge, 0)
    assert LedgerEntry.objects.filter(reservation=reservation, kind="settle").count() == (1 if expected_charge else 0)
    assert_ledger_consistent()


def test_concurrent_replays_of_one_reservation_key_hold_once():
    workspace = WorkspaceFactory.create()
    services.credits_grant(workspace=workspace, amount=100, source=Source.PURCHASED, idempotency_key="buy")

    results = run_together(
        *[lambda: services.credits_reserve(workspace=workspace, amount=7, idempotency_key="same-call")] * 10
    )

    assert all(isinstance(r, Reservation) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Reservation.objects.count() == 1
    assert CreditAccount.objects.get(workspace=workspace).held_units == 7 * U
    assert_ledger_consistent()


def test_concurrent_replays_of_a_grant_and_a_clawback_apply_once():
    workspace = WorkspaceFactory.create()
    grants = run_together(
        *[
            lambda: services.credits_grant(
                workspace=workspace, amount=10, source=Source.PURCHASED, idempotency_key="invoice-1"
            )
        ]
        * 8
    )
    assert all(isinstance(g, CreditGrant) for g in grants), grants
    assert len({g.pk for g in grants}) == 1
    clawbacks = run_together(
        *[
            lambda: services.credits_clawback(
                workspace=workspace, amount=4, idempotency_key="dispute-1", reason="chargeback"
            )
        ]
        * 8
    )
    assert all(c == services.Clawback(4 * U, 0) for c in clawbacks), clawbacks
    assert CreditAccount.objects.get(workspace=workspace).balance_units == 6 * U
    assert_ledger_consistent()


def test_concurrent_reserves_on_many_workspaces_do_not_block_each_other_or_deadlock():
    workspaces = [WorkspaceFactory.create() for _ in range(4)]
    for ws in workspaces:
        services.credits_grant(workspace=ws, amount=50, source=Source.PURCHASED, idempotency_key=f"buy-{ws.pk}")

    def call(ws_index: int, i: int) -> Callable[[], Reservation]:
        ws = workspaces[ws_index]
        return lambda: services.credits_settle(
            reservation=services.credits_reserve(workspace=ws, amount=5, idempotency_key=f"c-{ws.pk}-{i}"),
            actual=5,
        )

    results = run_together(*(call(i % 4, i) for i in range(40)))
    assert all(isinstance(r, Reservation) for r in results), results
    assert set(CreditAccount.objects.values_list("balance_units", flat=True)) == {0}
    assert_ledger_consistent()
    assert services.credits_reconcile(fix=False) == []

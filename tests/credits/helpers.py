"""Ledger assertions shared by the credits tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from apps.credits.models import CreditAccount, CreditGrant, LedgerEntry, Reservation


def _sums(**filters: object) -> tuple[int, int]:
    totals = LedgerEntry.objects.filter(**filters).aggregate(amount=Sum("amount_units"), held=Sum("held_units"))
    return int(totals["amount"] or 0), int(totals["held"] or 0)


def assert_ledger_consistent() -> None:
    """Every account and grant projection equals the sums of its entries, nothing is
    overdrawn, and each reservation's entries match its status."""
    for account in CreditAccount.objects.all():
        balance, held = _sums(account=account)
        assert (account.balance_units, account.held_units) == (balance, held), f"account {account.pk} drifted"
        assert account.held_units >= 0
        assert account.available_units >= 0, f"account {account.pk} overdrawn"
        grants = CreditGrant.objects.filter(account=account)
        grant_totals = grants.aggregate(balance=Sum("balance_units"), held=Sum("held_units"))
        assert (int(grant_totals["balance"] or 0), int(grant_totals["held"] or 0)) == (balance, held)
        open_holds = Reservation.objects.filter(account=account, status=Reservation.Status.HELD).aggregate(
            held=Sum("amount_units")
        )
        assert int(open_holds["held"] or 0) == held, f"account {account.pk}: holds of open reservations != held"
    for grant in CreditGrant.objects.all():
        balance, held = _sums(grant=grant)
        assert (grant.balance_units, grant.held_units) == (balance, held), f"grant {grant.pk} drifted"
        assert grant.held_units >= 0
        assert grant.available_units >= 0, f"grant {grant.pk} overdrawn"
    for reservation in Reservation.objects.all():
        assert_reservation_consistent(reservation)


def assert_reservation_consistent(reservation: Reservation) -> None:
    """A held reservation holds exactly its amount; an ended one holds nothing, and a settled
    one's charge entries sum to its charged amount (a released one charged nothing)."""
    entries = LedgerEntry.objects.filter(reservation=reservation)
    _, held = _sums(reservation=reservation)
    charged = -int(entries.filter(kind="settle").aggregate(total=Sum("amount_units"))["total"] or 0)
    reserved = int(entries.filter(kind="reserve").aggregate(total=Sum("held_units"))["total"] or 0)
    assert reserved == reservation.amount_units, f"reservation {reservation.pk}: reserve entries != amount"
    assert reserved == sum(reservation.allocations.values())
    if reservation.status == Reservation.Status.HELD:
        assert held == reservation.amount_units, f"reservation {reservation.pk} is held but holds {held}"
        assert charged == 0
        assert reservation.finished_at is None
        assert not entries.filter(kind__in=["settle", "release"]).exists()
    else:
        assert held == 0, f"reservation {reservation.pk} ended but still holds {held}"
        assert reservation.finished_at is not None
        assert charged == reservation.charged_units
        if reservation.status == Reservation.Status.RELEASED:
            assert reservation.charged_units == 0
            assert reservation.shortfall_units == 0


class Clock:
    """Django's clock, moved by the test. Services and selectors read `timezone.now()`, so
    patching Django's function (not our code) lets a test reach a grant's expiry or a stale
    hold's age without sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: datetime | None = None) -> None:
        self.now = start or timezone.now()
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

"""The ledger's rules as a Hypothesis state machine.

Random sequences of grant (with and without expiry), reserve, settle (sometimes above the
hold), release, checkpoint, sweep, time passing, periodic expiry, staff adjustments, clawbacks
and replays of any earlier key run against the real services, next to a small reference model
of the grants. After every step: every projection equals the sum of its entries, nothing is
overdrawn, every reservation is held or ended exactly once with entries to match, the services
agree with the model (allocations, charges, shortfalls, expiry), and a replay changed nothing.

Each example runs in its own transaction, rolled back at the end, with Django's clock set to a
fixed start and moved only by the machine, so a failing sequence replays deterministically.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.credits import services
from apps.credits.amounts import to_credits
from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import SOURCE_ORDER, CreditAccount, CreditGrant, LedgerEntry, Reservation, Source
from apps.credits.selectors import credits_balance
from tests.credits.helpers import assert_ledger_consistent
from tests.events import testcase_atomic
from tests.factories import UserFactory, WorkspaceFactory

START = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
U = 10_000
# Small amounts in half credits and short expiries in whole seconds, so scarcity, settling above
# the hold, holds outliving their grant and "now == expiry" come up often.
amounts = st.integers(1, 16).map(lambda n: n * U // 2)
seconds = st.integers(1, 40)


# ---------------------------------------------------------------------------- reference model


@dataclass
class MGrant:
    pk: int
    expires_at: datetime | None
    rank: int
    balance: int
    held: int = 0

    @property
    def free(self) -> int:
        return self.balance - self.held

    def order(self) -> tuple[bool, datetime, int, int]:
        return (self.expires_at is None, self.expires_at or START, self.rank, self.pk)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass
class MReservation:
    pk: int
    ws: int
    amount: int
    allocations: dict[int, int]
    created_at: datetime
    status: str = Reservation.Status.HELD
    checkpoint: int = 0
    charged: int = 0
    shortfall: int = 0


@dataclass
class MAccount:
    grants: dict[int, MGrant] = field(default_factory=dict)

    @property
    def balance(self) -> int:
        return sum(g.balance for g in self.grants.values())

    @property
    def held(self) -> int:
        return sum(g.held for g in self.grants.values())

    def spendable(self, now: datetime) -> list[MGrant]:
        return sorted((g for g in self.grants.values() if not g.expired(now) and g.free > 0), key=MGrant.order)

    def readable_available(self, now: datetime) -> int:
        """What a read shows: expired grants' free credits never count."""
        return sum(g.free for g in self.grants.values() if not g.expired(now))

    def expire_due(self, now: datetime) -> int:
        total = 0
        for g in self.grants.values():
            if g.expired(now) and g.free > 0:
                total += g.free
                g.balance -= g.free
        return total

    def take(self, units: int, now: datetime) -> int:
        taken = 0
        for g in self.spendable(now):
            part = min(units - taken, g.free)
            g.balance -= part
            taken += part
        return taken


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        # One transaction per example, rolled back in teardown: every example starts clean.
        self._atomic = testcase_atomic()
        self._atomic.__enter__()
        _clock["now"] = START
        self.staff = UserFactory.create(is_staff=True)
        self.members = [UserFactory.create(), UserFactory.create()]
        self.workspaces = [WorkspaceFactory.create(), WorkspaceFactory.create()]
        self.model = [MAccount(), MAccount()]
        self.res: dict[int, MReservation] = {}
        self.replays: list[tuple[str, Callable[[], Any], Any]] = []
        self.n = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # ------------------------------------------------------------------ helpers

    @property
    def now(self) -> datetime:
        return _clock["now"]

    def key(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.n}"

    def remember(self, label: str, call: Callable[[], Any], first: Any) -> None:
        self.replays.append((label, call, first))

    def finish_model(self, r: MReservation, charge: int | None) -> None:
        if r.status != Reservation.Status.HELD:
            return
        acct = self.model[r.ws]
        acct.expire_due(self.now)
        to_charge = 0 if charge is None else charge
        charged = 0
        for g in sorted((acct.grants[pk] for pk in r.allocations), key=MGrant.order):
            held = r.allocations[g.pk]
            part = min(to_charge - charged, held)
            lapsed = held - part if g.expired(self.now) else 0
            g.balance -= part + lapsed
            g.held -= held
            charged += part
        excess = to_charge - charged
        extra = acct.take(excess, self.now) if excess > 0 else 0
        r.status = Reservation.Status.RELEASED if charge is None else Reservation.Status.SETTLED
        r.charged = charged + extra
        r.shortfall = excess - extra

    # ------------------------------------------------------------------ rules

    @rule(
        ws=st.integers(0, 1),
        units=amounts,
        expires_in=st.one_of(st.none(), seconds),
        source=st.sampled_from([Source.TRIAL, Source.SUBSCRIPTION, Source.BONUS, Source.PURCHASED]),
    )
    def grant(self, ws: int, units: int, expires_in: int | None, source: str) -> None:
        expires_at = self.now + timedelta(seconds=expires_in) if expires_in is not None else None
        call = partial(
            services.credits_grant,
            workspace=self.workspaces[ws],
            amount=to_credits(units),
            source=source,
            idempotency_key=self.key("grant"),
            expires_at=expires_at,
        )
        grant = call()
        self.model[ws].grants[grant.pk] = MGrant(grant.pk, expires_at, SOURCE_ORDER[source], units)
        self.remember("grant", lambda: call().pk, grant.pk)

    @rule(target=reservations, ws=st.integers(0, 1), units=amounts, member=st.integers(0, 1))
    def reserve(self, ws: int, units: int, member: int) -> Any:
        acct = copy.deepcopy(self.model[ws])
        acct.expire_due(self.now)
        available = acct.balance - acct.held
        call = partial(
            services.credits_reserve,
            workspace=self.workspaces[ws],
            units=units,
            idempotency_key=self.key("res"),
            user=self.members[member],
        )
        if available < units:
            with pytest.raises(InsufficientCredits) as refused:
                call()
            assert (refused.value.available_units, refused.value.requested_units) == (available, units)
            return multiple()
        reservation = call()
        expected: dict[int, int] = {}
        remaining = units
        for g in acct.spendable(self.now):
            part = min(remaining, g.free)
            g.held += part
            expected[g.pk] = part
            remaining -= part
            if not remaining:
                break
        # The exact grants, amounts and consumption order.
        assert list(reservation.allocations.items()) == [(str(k), v) for k, v in expected.items()]
        self.model[ws] = acct
        self.res[reservation.pk] = MReservation(reservation.pk, ws, units, expected, self.now)
        self.remember("reserve", lambda: call().pk, reservation.pk)
        return reservation.pk

    @rule(pk=reservations, ratio=st.sampled_from([0, 0.25, 0.5, 1, 1.5, 3]), extra=st.integers(0, 3))
    def settle(self, pk: int, ratio: float, extra: int) -> None:
        r = self.res[pk]
        actual = int(r.amount * ratio) + extra  # sometimes above the hold
        result = services.credits_settle(reservation=Reservation.objects.get(pk=pk), actual_units=actual)
        self.finish_model(r, actual)
        assert (result.status, result.charged_units, result.shortfall_units) == (r.status, r.charged, r.shortfall)
        outcome = (r.status, r.charged, r.shortfall)
        self.remember(
            "settle",
            lambda: _outcome(services.credits_settle(reservation=Reservation.objects.get(pk=pk), actual_units=1)),
            outcome,
        )

    @rule(pk=reservations)
    def release(self, pk: int) -> None:
        r = self.res[pk]
        result = services.credits_release(reservation=Reservation.objects.get(pk=pk))
        self.finish_model(r, None)
        assert (result.status, result.charged_units) == (r.status, r.charged)
        outcome = (r.status, r.charged, r.shortfall)
        self.remember(
            "release", lambda: _outcome(services.credits_release(reservation=Reservation.objects.get(pk=pk))), outcome
        )

    @rule(pk=reservations, ratio=st.sampled_from([0, 0.5, 1]))
    def checkpoint(self, pk: int, ratio: float) -> None:
        r = self.res[pk]
        units = int(r.amount * ratio)
        services.credits_checkpoint(reservation=Reservation.objects.get(pk=pk), delivered_units=units)
        if r.status == Reservation.Status.HELD:
            r.checkpoint = units

    @rule(delta=seconds)
    def time_passes(self, delta: int) -> None:
        _clock["now"] = self.now + timedelta(seconds=delta)

    @rule()
    def clock_reaches_the_next_expiry(self) -> None:
        # Exactly the expiry instant: a grant expires at `expires_at`, not a moment later.
        upcoming = [
            g.expires_at for m in self.model for g in m.grants.values() if g.expires_at and g.expires_at > self.now
        ]
        if upcoming:
            _clock["now"] = min(upcoming)

    @rule()
    def periodic_expiry(self) -> None:
        expected = sum(copy.deepcopy(m).expire_due(self.now) for m in self.model)
        assert services.credits_expire() == expected
        for m in self.model:
            m.expire_due(self.now)

    @rule(older_than=st.integers(0, 60))
    def sweep(self, older_than: int) -> None:
        cutoff = self.now - timedelta(seconds=older_than)
        stale = sorted(
            (r for r in self.res.values() if r.status == Reservation.Status.HELD and r.created_at < cutoff),
            key=lambda r: r.pk,
        )
        counts = {"settled": 0, "released": 0}
        for r in stale:
            self.finish_model(r, r.checkpoint if r.checkpoint > 0 else None)
            counts["settled" if r.status == Reservation.Status.SETTLED else "released"] += 1
        assert services.credits_sweep(older_than=timedelta(seconds=older_than)) == counts

    @rule(ws=st.integers(0, 1), units=st.one_of(amounts, amounts.map(lambda n: -n)))
    def adjust(self, ws: int, units: int) -> None:
        key = self.key("adj")
        call = partial(
            services.credits_adjust,
            workspace=self.workspaces[ws],
            amount=to_credits(units),
            reason="state machine",
            acting_user=self.staff,
            idempotency_key=key,
        )
        acct = copy.deepcopy(self.model[ws])
        acct.expire_due(self.now)
        if units < 0 and acct.balance - acct.held < -units:
            with pytest.raises(InsufficientCredits):
                call()
            return
        assert call() == units
        if units > 0:
            grant = CreditGrant.objects.get(idempotency_key=f"adjust:{key}")
            acct.grants[grant.pk] = MGrant(grant.pk, None, SOURCE_ORDER[Source.BONUS], units)
        else:
            assert acct.take(-units, self.now) == -units
        self.model[ws] = acct
        self.remember("adjust", call, units)

    @rule(ws=st.integers(0, 1), units=amounts)
    def clawback(self, ws: int, units: int) -> None:
        call = partial(
            services.credits_clawback,
            workspace=self.workspaces[ws],
            amount=to_credits(units),
            reason="dispute",
            idempotency_key=self.key("claw"),
        )
        acct = self.model[ws]
        acct.expire_due(self.now)
        taken = acct.take(units, self.now)
        result = call()
        assert (result.clawed_units, result.shortfall_units) == (taken, units - taken)
        self.remember("clawback", call, result)

    @precondition(lambda self: bool(self.replays))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        label, call, first = data.draw(st.sampled_from(self.replays), label="replay")
        before = _snapshot()
        assert call() == first, f"replayed {label} returned a different result"
        assert _snapshot() == before, f"replayed {label} changed the ledger"

    # ------------------------------------------------------------------ invariants

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert_ledger_consistent()

    @invariant()
    def services_agree_with_the_model(self) -> None:
        for ws, m in zip(self.workspaces, self.model, strict=True):
            account = CreditAccount.objects.filter(workspace=ws).first()
            stored = (account.balance_units, account.held_units) if account else (0, 0)
            assert stored == (m.balance, m.held)
            grants = {g.pk: (g.balance_units, g.held_units) for g in CreditGrant.objects.filter(workspace=ws)}
            assert grants == {pk: (g.balance, g.held) for pk, g in m.grants.items()}
            # Reads never count an expired grant's free credits, expiry task or not.
            assert credits_balance(workspace=ws).available_units == m.readable_available(self.now)
        stored_res = {r.pk: (r.status, r.charged_units, r.shortfall_units) for r in Reservation.objects.all()}
        assert stored_res == {pk: (r.status, r.charged, r.shortfall) for pk, r in self.res.items()}


_clock: dict[str, datetime] = {"now": START}


def _outcome(reservation: Reservation) -> tuple[str, int, int]:
    return (reservation.status, reservation.charged_units, reservation.shortfall_units)


def _snapshot() -> tuple[Any, ...]:
    return (
        LedgerEntry.objects.count(),
        sorted(CreditAccount.objects.values_list("pk", "balance_units", "held_units")),
        sorted(CreditGrant.objects.values_list("pk", "balance_units", "held_units")),
        sorted(Reservation.objects.values_list("pk", "status", "charged_units")),
    )


@pytest.mark.django_db
def test_ledger_rules_hold_for_any_sequence_of_operations(monkeypatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: _clock["now"])
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

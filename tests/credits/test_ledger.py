"""The credits ledger through its services: buckets and consumption order, expiry, holds that
end exactly once, idempotent replays, caps, staff corrections, the sweeper, low-balance alerts,
trial credits and reconciliation. Every test ends by checking the ledger's invariants."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from constance.test.pytest import override_config
from django.core import mail
from django.core.mail import EmailMessage
from django.db.models import Model
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from apps.audit.models import AuditEvent
from apps.credits import services
from apps.credits.exceptions import CreditsError, InsufficientCredits, SpendingCapReached
from apps.credits.models import CreditAccount, CreditGrant, EntryKind, LedgerEntry, Reservation, Source
from apps.credits.selectors import credits_balance
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_create, workspace_create_personal
from tests.conftest import Team
from tests.credits.helpers import Clock, assert_ledger_consistent
from tests.factories import UserFactory, WorkspaceFactory

U = 10_000  # units per credit
_keys = itertools.count()
M = TypeVar("M", bound=Model)


@pytest.fixture(autouse=True)
def _ledger_stays_consistent(db: None) -> Iterator[None]:
    yield
    assert_ledger_consistent()


@pytest.fixture
def ws(db: None) -> Workspace:
    return WorkspaceFactory.create()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


def grant(
    ws: Workspace, amount: Decimal | int | str, source: str = Source.PURCHASED, *, days: float | None = None, **kw: Any
) -> CreditGrant:
    expires_at = timezone.now() + timedelta(days=days) if days is not None else None
    kw.setdefault("idempotency_key", key("grant"))
    return services.credits_grant(workspace=ws, amount=amount, source=source, expires_at=expires_at, **kw)


def reserve(ws: Workspace, amount: Decimal | int | str, **kw: Any) -> Reservation:
    kw.setdefault("idempotency_key", key("res"))
    return services.credits_reserve(workspace=ws, amount=amount, **kw)


def account(ws: Workspace) -> CreditAccount:
    return CreditAccount.objects.get(workspace=ws)


def available(ws: Workspace) -> int:
    return credits_balance(workspace=ws).available_units


def fresh(obj: M) -> M:
    obj.refresh_from_db()
    return obj


def allocations(reservation: Reservation) -> dict[int, int]:
    return {int(k): v for k, v in reservation.allocations.items()}


# ---------------------------------------------------------------------------- consumption order


def test_reserve_takes_trial_then_subscription_then_bonus_and_never_expiring_purchased_last(ws):
    # Created in the reverse of the consumption order, so neither age nor id explains the result.
    purchased = grant(ws, 10, Source.PURCHASED)
    bonus = grant(ws, 10, Source.BONUS, days=60)
    subscription = grant(ws, 10, Source.SUBSCRIPTION, days=30)
    trial = grant(ws, 10, Source.TRIAL, days=7)

    first = reserve(ws, 25)
    assert allocations(first) == {trial.pk: 10 * U, subscription.pk: 10 * U, bonus.pk: 5 * U}
    second = reserve(ws, 10)
    assert allocations(second) == {bonus.pk: 5 * U, purchased.pk: 5 * U}
    assert fresh(purchased).held_units == 5 * U


def test_grants_expiring_together_are_taken_by_source_rank_then_age(ws):
    expires_at = timezone.now() + timedelta(days=5)
    older_bonus = services.credits_grant(
        workspace=ws, amount=1, source=Source.BONUS, expires_at=expires_at, idempotency_key=key()
    )
    subscription = services.credits_grant(
        workspace=ws, amount=1, source=Source.SUBSCRIPTION, expires_at=expires_at, idempotency_key=key()
    )
    newer_bonus = services.credits_grant(
        workspace=ws, amount=1, source=Source.BONUS, expires_at=expires_at, idempotency_key=key()
    )
    reservation = reserve(ws, "2.5")
    assert list(allocations(reservation).items()) == [
        (subscription.pk, U),
        (older_bonus.pk, U),
        (newer_bonus.pk, U // 2),
    ]


def test_settle_below_hold_charges_the_soonest_expiring_grant_first(ws):
    # The purchased grant has the lower id. PostgreSQL's jsonb sorts the allocation keys, so
    # settling must not follow their stored order.
    purchased = grant(ws, 10, Source.PURCHASED)
    trial = grant(ws, 10, Source.TRIAL, days=7)
    reservation = reserve(ws, 15)
    services.credits_settle(reservation=reservation, actual="8")
    assert (fresh(trial).balance_units, fresh(trial).held_units) == (2 * U, 0)
    assert (fresh(purchased).balance_units, fresh(purchased).held_units) == (10 * U, 0)


def test_reservation_is_refused_with_available_and_requested_amounts(ws):
    grant(ws, 10)
    reserve(ws, 4)
    with pytest.raises(InsufficientCredits) as refused:
        reserve(ws, "6.5", idempotency_key="too-much")
    assert refused.value.available_units == 6 * U
    assert refused.value.requested_units == 65_000
    assert refused.value.status_code == 402
    assert "6.5" in refused.value.message
    assert not Reservation.objects.filter(idempotency_key="too-much").exists()
    assert account(ws).held_units == 4 * U


@pytest.mark.parametrize("amount", [0, "-1", 1.5, "0.00001", "NaN"])
def test_reserve_refuses_amounts_that_are_not_positive_exact_credits(ws, amount):
    grant(ws, 10)
    with pytest.raises(CreditsError):
        reserve(ws, amount)
    assert not Reservation.objects.exists()


def test_a_new_workspace_can_be_refused_without_any_account_yet(ws):
    with pytest.raises(InsufficientCredits) as refused:
        reserve(ws, 1)
    assert refused.value.available_units == 0


# ---------------------------------------------------------------------------- expiry


def test_balance_never_counts_an_expired_grants_free_credits_before_the_periodic_task(ws, clock):
    grant(ws, 10, Source.TRIAL, days=1)
    grant(ws, 5, Source.PURCHASED)
    assert available(ws) == 15 * U
    clock.advance(days=1, seconds=1)
    balance = credits_balance(workspace=ws, with_grants=True)
    assert balance.available_units == 5 * U
    assert balance.balance_units == 5 * U
    assert [g.source for g in balance.grants] == [Source.PURCHASED]
    assert account(ws).balance_units == 15 * U  # nothing written by a read


def test_periodic_expiry_removes_the_free_part_and_records_it(ws, clock):
    trial = grant(ws, 10, Source.TRIAL, days=1)
    subscription = grant(ws, 3, Source.SUBSCRIPTION, days=30)
    clock.advance(days=2)

    assert services.credits_expire() == 10 * U
    trial = fresh(trial)
    assert (trial.balance_units, trial.expired_at) == (0, clock.now)
    [entry] = LedgerEntry.objects.filter(kind=EntryKind.EXPIRE)
    assert (entry.grant_id, entry.amount_units) == (trial.pk, -10 * U)
    assert account(ws).next_expiry_at == subscription.expires_at
    assert services.credits_expire() == 0  # nothing left to expire
    assert LedgerEntry.objects.filter(kind=EntryKind.EXPIRE).count() == 1


def test_periodic_expiry_with_an_explicit_now(ws):
    trial = grant(ws, 10, Source.TRIAL, days=1)
    assert services.credits_expire(now=timezone.now()) == 0
    assert services.credits_expire(now=trial.expires_at) == 10 * U
    assert account(ws).balance_units == 0
    assert account(ws).next_expiry_at is None


def test_reserve_applies_due_expiry_before_checking_the_balance(ws, clock):
    grant(ws, 10, Source.TRIAL, days=1)
    purchased = grant(ws, 5, Source.PURCHASED)
    clock.advance(days=2)
    with pytest.raises(InsufficientCredits) as refused:
        reserve(ws, 6)
    assert refused.value.available_units == 5 * U
    reservation = reserve(ws, 5)
    assert allocations(reservation) == {purchased.pk: 5 * U}
    assert account(ws).balance_units == 5 * U  # the trial's 10 expired, recorded by this reserve


def test_hold_on_a_grant_that_expires_before_settle_charges_the_used_part_and_expires_the_rest(ws, clock):
    trial = grant(ws, 10, Source.TRIAL, days=1)
    purchased = grant(ws, 5, Source.PURCHASED)
    reservation = reserve(ws, 6)
    clock.advance(days=1, hours=1)

    # The free part expires now; the held part waits for its reservation.
    assert services.credits_expire() == 4 * U
    assert (fresh(trial).balance_units, fresh(trial).held_units, fresh(trial).expired_at) == (6 * U, 6 * U, None)
    assert available(ws) == 5 * U

    settled = services.credits_settle(reservation=reservation, actual=2)
    assert (settled.charged_units, settled.shortfall_units) == (2 * U, 0)
    trial = fresh(trial)
    assert (trial.balance_units, trial.held_units, trial.expired_at) == (0, 0, clock.now)
    lapse = LedgerEntry.objects.get(reservation=reservation, kind=EntryKind.EXPIRE)
    assert lapse.amount_units == -4 * U
    assert fresh(purchased).balance_units == 5 * U
    assert (account(ws).balance_units, account(ws).held_units) == (5 * U, 0)


def test_releasing_a_hold_on_an_expired_grant_expires_it_instead_of_returning_it(ws, clock):
    trial = grant(ws, 10, Source.TRIAL, days=1)
    reservation = reserve(ws, 6)
    clock.advance(days=2)
    services.credits_release(reservation=reservation)
    assert (fresh(trial).balance_units, fresh(trial).held_units) == (0, 0)
    assert available(ws) == 0
    assert account(ws).balance_units == 0


def test_a_grant_with_an_expiry_in_the_past_is_refused(ws):
    with pytest.raises(CreditsError, match="future"):
        services.credits_grant(
            workspace=ws,
            amount=1,
            source=Source.BONUS,
            idempotency_key="late",
            expires_at=timezone.now() - timedelta(seconds=1),
        )
    assert not CreditGrant.objects.exists()


def test_replaying_a_grant_after_its_expiry_passed_returns_the_first_grant(ws, clock):
    expires_at = timezone.now() + timedelta(days=1)
    first = services.credits_grant(
        workspace=ws, amount=1, source=Source.SUBSCRIPTION, idempotency_key="period-1", expires_at=expires_at
    )
    clock.advance(days=2)
    again = services.credits_grant(
        workspace=ws, amount=1, source=Source.SUBSCRIPTION, idempotency_key="period-1", expires_at=expires_at
    )
    assert again.pk == first.pk
    assert CreditGrant.objects.count() == 1


# ---------------------------------------------------------------------------- settle & release


def test_settle_below_the_hold_charges_the_actual_cost_and_releases_the_rest(ws):
    purchased = grant(ws, 10)
    reservation = reserve(ws, 4)
    assert available(ws) == 6 * U
    settled = services.credits_settle(reservation=reservation, actual="1.25", usage={"input_tokens": 12})
    assert settled.status == Reservation.Status.SETTLED
    assert (settled.charged_units, settled.shortfall_units) == (12_500, 0)
    assert settled.usage == {"input_tokens": 12}
    assert (account(ws).balance_units, account(ws).held_units) == (87_500, 0)
    assert fresh(purchased).available_units == 87_500
    kinds = sorted(LedgerEntry.objects.filter(reservation=reservation).values_list("kind", flat=True))
    assert kinds == [EntryKind.RELEASE, EntryKind.RESERVE, EntryKind.SETTLE]


def test_settle_above_the_hold_charges_up_to_the_available_balance_and_records_the_shortfall(ws):
    grant(ws, 10)
    first = reserve(ws, 4)
    other = reserve(ws, 3)
    settled = services.credits_settle(reservation=first, actual=9)
    # 4 from the hold, then 3 of the 5 extra: the other hold's 3 credits stay untouched.
    assert (settled.charged_units, settled.shortfall_units) == (7 * U, 2 * U)
    assert (account(ws).balance_units, account(ws).held_units) == (3 * U, 3 * U)
    assert available(ws) == 0
    assert services.credits_settle(reservation=other, actual=3).charged_units == 3 * U
    assert account(ws).balance_units == 0


def test_settle_above_the_hold_with_enough_credits_has_no_shortfall(ws):
    trial = grant(ws, 2, Source.TRIAL, days=3)
    purchased = grant(ws, 10)
    reservation = reserve(ws, 1)
    settled = services.credits_settle(reservation=reservation, actual=5)
    assert (settled.charged_units, settled.shortfall_units) == (5 * U, 0)
    # The excess comes from the free credits in consumption order: the trial first.
    assert (fresh(trial).balance_units, fresh(purchased).balance_units) == (0, 7 * U)


def test_settle_with_nothing_else_available_records_the_whole_excess_as_shortfall(ws):
    grant(ws, 3)
    reservation = reserve(ws, 3)
    settled = services.credits_settle(reservation=reservation, actual="3.5")
    assert (settled.charged_units, settled.shortfall_units) == (3 * U, 5_000)
    assert account(ws).balance_units == 0


def test_release_returns_the_whole_hold(ws):
    grant(ws, 10)
    reservation = reserve(ws, 4)
    released = services.credits_release(reservation=reservation, reason="provider failed")
    assert released.status == Reservation.Status.RELEASED
    assert (released.charged_units, released.outcome_reason) == (0, "provider failed")
    assert (account(ws).balance_units, account(ws).held_units) == (10 * U, 0)


def test_a_settled_reservation_keeps_its_first_outcome(ws):
    grant(ws, 10)
    reservation = reserve(ws, 4)
    first = services.credits_settle(reservation=reservation, actual=3)
    entries = LedgerEntry.objects.count()
    again = services.credits_settle(reservation=reservation, actual=1)
    released = services.credits_release(reservation=reservation)
    assert again.status == released.status == Reservation.Status.SETTLED
    assert again.charged_units == released.charged_units == first.charged_units == 3 * U
    assert LedgerEntry.objects.count() == entries
    assert account(ws).balance_units == 7 * U


def test_a_released_reservation_keeps_its_first_outcome(ws):
    grant(ws, 10)
    reservation = reserve(ws, 4)
    services.credits_release(reservation=reservation)
    entries = LedgerEntry.objects.count()
    settled = services.credits_settle(reservation=reservation, actual=4)
    assert (settled.status, settled.charged_units) == (Reservation.Status.RELEASED, 0)
    assert services.credits_release(reservation=reservation).status == Reservation.Status.RELEASED
    assert LedgerEntry.objects.count() == entries
    assert account(ws).balance_units == 10 * U


def test_settle_refuses_a_negative_or_inexact_actual_cost(ws):
    grant(ws, 10)
    reservation = reserve(ws, 4)
    refused: tuple[Any, ...] = ("-1", 0.5, "0.00001")  # a float is refused too: typed loosely on purpose
    for actual in refused:
        with pytest.raises(CreditsError):
            services.credits_settle(reservation=reservation, actual=actual)
    with pytest.raises(CreditsError):
        services.credits_settle(reservation=reservation, actual_units=-1)
    assert fresh(reservation).status == Reservation.Status.HELD


def test_settling_zero_ends_the_reservation_without_a_charge(ws):
    grant(ws, 10)
    settled = services.credits_settle(reservation=reserve(ws, 4), actual=0)
    assert (settled.status, settled.charged_units) == (Reservation.Status.SETTLED, 0)
    assert account(ws).balance_units == 10 * U


# ---------------------------------------------------------------------------- idempotent replays


def test_replaying_a_grant_changes_nothing(ws):
    first = grant(ws, 10, idempotency_key="invoice-1")
    entries = LedgerEntry.objects.count()
    again = grant(ws, 99, idempotency_key="invoice-1")
    assert again.pk == first.pk
    assert again.amount_units == 10 * U
    assert LedgerEntry.objects.count() == entries
    assert account(ws).balance_units == 10 * U


def test_replaying_a_reservation_holds_nothing_more_in_any_state(ws):
    grant(ws, 10)
    first = reserve(ws, 4, idempotency_key="call-1")
    assert reserve(ws, 4, idempotency_key="call-1").pk == first.pk
    assert account(ws).held_units == 4 * U
    services.credits_settle(reservation=first, actual=1)
    replay = reserve(ws, 4, idempotency_key="call-1")
    assert (replay.pk, replay.status) == (first.pk, Reservation.Status.SETTLED)
    assert (account(ws).balance_units, account(ws).held_units) == (9 * U, 0)
    assert Reservation.objects.count() == 1


def test_replaying_a_clawback_returns_the_first_result(ws):
    grant(ws, 5)
    first = services.credits_clawback(workspace=ws, amount=8, idempotency_key="dispute-1", reason="chargeback")
    assert (first.clawed_units, first.shortfall_units) == (5 * U, 3 * U)
    grant(ws, 10)
    entries = LedgerEntry.objects.count()
    again = services.credits_clawback(workspace=ws, amount=8, idempotency_key="dispute-1", reason="chargeback")
    assert again == first
    assert LedgerEntry.objects.count() == entries
    assert account(ws).balance_units == 10 * U


def test_replaying_a_refund_returns_the_first_grant(ws):
    first = services.credits_refund(workspace=ws, amount=2, idempotency_key="job-9", reason="failed")
    again = services.credits_refund(workspace=ws, amount=2, idempotency_key="job-9", reason="failed")
    assert again.pk == first.pk
    assert account(ws).balance_units == 2 * U
    assert LedgerEntry.objects.get().kind == EntryKind.REFUND


def test_a_refund_keyed_like_an_earlier_grant_is_not_mistaken_for_a_replay(ws):
    purchase = grant(ws, 10, idempotency_key="invoice-7")
    refund = services.credits_refund(workspace=ws, amount=3, idempotency_key="invoice-7", reason="goodwill")
    assert refund.pk != purchase.pk
    assert account(ws).balance_units == 13 * U


def test_replayed_adjustments_change_nothing(ws):
    staff = UserFactory.create(is_staff=True)
    grant(ws, 10)
    assert services.credits_adjust(workspace=ws, amount=5, reason="gift", acting_user=staff, idempotency_key="a") == (
        5 * U
    )
    assert services.credits_adjust(workspace=ws, amount=-3, reason="fix", acting_user=staff, idempotency_key="b") == (
        -3 * U
    )
    entries = LedgerEntry.objects.count()
    assert services.credits_adjust(workspace=ws, amount=5, reason="gift", acting_user=staff, idempotency_key="a") == (
        5 * U
    )
    assert services.credits_adjust(workspace=ws, amount=-3, reason="fix", acting_user=staff, idempotency_key="b") == (
        -3 * U
    )
    assert LedgerEntry.objects.count() == entries
    assert AuditEvent.objects.filter(action="credits.adjust").count() == 2
    assert account(ws).balance_units == 12 * U


def test_an_adjustment_key_that_prefixes_an_earlier_one_is_not_a_replay(ws):
    staff = UserFactory.create(is_staff=True)
    services.credits_adjust(workspace=ws, amount=5, reason="one", acting_user=staff, idempotency_key="ab")
    assert services.credits_adjust(workspace=ws, amount=2, reason="two", acting_user=staff, idempotency_key="a") == (
        2 * U
    )
    assert account(ws).balance_units == 7 * U


def test_a_key_used_by_another_workspace_is_refused_not_replayed(ws):
    other = WorkspaceFactory.create()
    grant(ws, 10, idempotency_key="shared")
    reserve(ws, 1, idempotency_key="shared-call")
    grant(other, 10)
    with pytest.raises(CreditsError, match="another workspace"):
        grant(other, 10, idempotency_key="shared")
    with pytest.raises(CreditsError, match="another workspace"):
        reserve(other, 1, idempotency_key="shared-call")
    assert account(other).held_units == 0


def test_idempotency_keys_must_fit_the_ledger(ws):
    grant(ws, 10)
    with pytest.raises(CreditsError, match="idempotency key"):
        reserve(ws, 1, idempotency_key="x" * 181)
    with pytest.raises(CreditsError, match="idempotency key"):
        reserve(ws, 1, idempotency_key="")


# ---------------------------------------------------------------------------- spending caps


def test_daily_cap_counts_held_reservations(ws):
    grant(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(daily_cap_units=10 * U)
    first = reserve(ws, 6)
    with pytest.raises(SpendingCapReached) as refused:
        reserve(ws, 5)
    assert (refused.value.cap, refused.value.spent_units, refused.value.limit_units) == ("daily", 6 * U, 10 * U)
    assert refused.value.requested_units == 5 * U
    assert refused.value.status_code == 402
    services.credits_settle(reservation=first, actual=2)  # the charge, not the hold, counts now
    reserve(ws, 8)
    with pytest.raises(SpendingCapReached):
        reserve(ws, "0.0001")


def test_released_holds_and_yesterdays_spending_do_not_count_toward_the_daily_cap(ws, clock):
    clock.now = clock.now.replace(hour=12)
    grant(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(daily_cap_units=10 * U)
    services.credits_settle(reservation=reserve(ws, 9), actual=9)
    services.credits_release(reservation=reserve(ws, 1))
    with pytest.raises(SpendingCapReached):
        reserve(ws, 2)
    clock.advance(days=1)
    reserve(ws, 10)


def test_monthly_cap(ws):
    grant(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(monthly_cap_units=20 * U)
    services.credits_settle(reservation=reserve(ws, 15), actual=15)
    with pytest.raises(SpendingCapReached) as refused:
        reserve(ws, 6)
    assert refused.value.cap == "monthly"
    reserve(ws, 5)


def test_member_caps_apply_to_each_member_separately(ws):
    alice, bob = UserFactory.create(), UserFactory.create()
    grant(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(member_daily_cap_units=5 * U, member_monthly_cap_units=7 * U)
    reserve(ws, 5, user=alice)
    with pytest.raises(SpendingCapReached) as refused:
        reserve(ws, 1, user=alice)
    assert refused.value.cap == "member daily"
    reserve(ws, 5, user=bob)
    reserve(ws, 20)  # a call without a member is not capped per member


def test_member_monthly_cap(ws, clock):
    clock.now = clock.now.replace(day=10, hour=12)
    alice = UserFactory.create()
    grant(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(member_monthly_cap_units=7 * U)
    services.credits_settle(reservation=reserve(ws, 5, user=alice), actual=5)
    clock.advance(days=1)
    with pytest.raises(SpendingCapReached) as refused:
        reserve(ws, 3, user=alice)
    assert (refused.value.cap, refused.value.spent_units) == ("member monthly", 5 * U)


# ---------------------------------------------------------------------------- clawback, refund, adjust


def test_clawback_takes_what_is_available_and_records_the_shortfall(ws):
    grant(ws, 10)
    held = reserve(ws, 4)
    result = services.credits_clawback(
        workspace=ws, amount=8, idempotency_key="refund-inv-3", reason="payment refunded", reference="inv-3"
    )
    assert (result.clawed_units, result.shortfall_units) == (6 * U, 2 * U)
    assert (account(ws).balance_units, account(ws).held_units) == (4 * U, 4 * U)
    record = LedgerEntry.objects.get(idempotency_key="clawback-record:refund-inv-3")
    assert record.metadata["shortfall_units"] == 2 * U
    assert record.metadata["requested_units"] == 8 * U
    # The call in flight still settles from its hold.
    assert services.credits_settle(reservation=held, actual=4).charged_units == 4 * U


def test_adjust_requires_a_reason(ws):
    staff = UserFactory.create(is_staff=True)
    with pytest.raises(CreditsError, match="reason"):
        services.credits_adjust(workspace=ws, amount=5, reason="  ", acting_user=staff, idempotency_key="x")
    assert not LedgerEntry.objects.exists()
    assert not AuditEvent.objects.filter(action="credits.adjust").exists()


def test_adjust_writes_an_audit_row_with_the_reason(ws):
    staff = UserFactory.create(is_staff=True)
    services.credits_adjust(workspace=ws, amount=5, reason="Support ticket 42", acting_user=staff, idempotency_key="t")
    event = AuditEvent.objects.get(action="credits.adjust")
    assert event.actor == staff
    assert event.workspace_id == ws.pk
    assert event.metadata["reason"] == "Support ticket 42"
    assert event.target_id == str(account(ws).pk)
    [entry] = LedgerEntry.objects.filter(kind=EntryKind.ADJUST)
    assert (entry.amount_units, entry.actor) == (5 * U, staff)
    assert available(ws) == 5 * U


def test_negative_adjust_cannot_take_the_balance_below_zero(ws):
    staff = UserFactory.create(is_staff=True)
    grant(ws, 10)
    reserve(ws, 7)
    with pytest.raises(InsufficientCredits) as refused:
        services.credits_adjust(workspace=ws, amount=-4, reason="fix", acting_user=staff, idempotency_key="n")
    assert (refused.value.available_units, refused.value.requested_units) == (3 * U, 4 * U)
    assert not AuditEvent.objects.filter(action="credits.adjust").exists()
    services.credits_adjust(workspace=ws, amount=-3, reason="fix", acting_user=staff, idempotency_key="m")
    assert (account(ws).balance_units, account(ws).held_units) == (7 * U, 7 * U)


# ---------------------------------------------------------------------------- sweeper


def test_sweeper_settles_checkpointed_cost_releases_other_stale_holds_and_leaves_fresh_ones(ws, clock):
    grant(ws, 100)
    delivered = reserve(ws, 10)
    nothing_delivered = reserve(ws, 10)
    services.credits_checkpoint(reservation=delivered, delivered_units=3 * U)
    clock.advance(minutes=31)
    fresh_hold = reserve(ws, 10)

    assert services.credits_sweep(older_than=timedelta(minutes=30)) == {"settled": 1, "released": 1}
    delivered, nothing_delivered, fresh_hold = fresh(delivered), fresh(nothing_delivered), fresh(fresh_hold)
    assert (delivered.status, delivered.charged_units) == (Reservation.Status.SETTLED, 3 * U)
    assert delivered.outcome_reason == services.SWEEP_REASON
    assert nothing_delivered.status == Reservation.Status.RELEASED
    assert fresh_hold.status == Reservation.Status.HELD
    assert (account(ws).balance_units, account(ws).held_units) == (97 * U, 10 * U)
    assert services.credits_sweep(older_than=timedelta(minutes=30)) == {"settled": 0, "released": 0}


def test_sweeper_leaves_a_hold_the_caller_ended_meanwhile(ws, clock):
    grant(ws, 10)
    reservation = reserve(ws, 5)
    services.credits_settle(reservation=reservation, actual=2)
    clock.advance(hours=1)
    assert services.credits_sweep(older_than=timedelta(minutes=30)) == {"settled": 0, "released": 0}
    assert fresh(reservation).charged_units == 2 * U


def test_checkpoint_after_the_end_changes_nothing(ws):
    grant(ws, 10)
    reservation = services.credits_release(reservation=reserve(ws, 5))
    services.credits_checkpoint(reservation=reservation, delivered_units=5 * U)
    assert fresh(reservation).checkpoint_units == 0


# ---------------------------------------------------------------------------- low-balance alerts


@pytest.fixture
def alerted(
    alpha: Team, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> tuple[Team, Callable[..., list[str]]]:
    """Alpha's workspace with thresholds 100 and 10 credits and 150 credits; a helper that runs
    a block with on-commit callbacks executed and returns the low-balance emails it sent."""
    services.credits_account_open(workspace=alpha.workspace)
    CreditAccount.objects.filter(workspace=alpha.workspace).update(alert_thresholds=[100 * U, 10 * U])
    grant(alpha.workspace, 150)
    mail.outbox.clear()

    def spend(amount: int | str, *, actual: int | str | None = None) -> list[str]:
        before = len(mail.outbox)
        with django_capture_on_commit_callbacks(execute=True):
            reservation = reserve(alpha.workspace, amount)
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_settle(reservation=reservation, actual=amount if actual is None else actual)
        return [m.to[0] for m in mail.outbox[before:]]

    return alpha, spend


def test_crossing_a_threshold_by_spending_sends_one_email_to_owners_and_admins(alerted):
    team, spend = alerted
    assert spend(40) == []  # 110 left: above both thresholds
    assert sorted(spend(20)) == sorted([team.owner.email, team.admin.email])  # 90 < 100
    assert team.member.email not in [m.to[0] for m in mail.outbox]
    assert "100" in str(mail.outbox[0].subject) + str(mail.outbox[0].body)


def test_a_further_spend_below_the_same_threshold_sends_nothing(alerted):
    _, spend = alerted
    assert len(spend(60)) == 2  # 90
    assert spend(30) == []  # 60, still between 100 and 10
    assert len(spend(55)) == 2  # 5 < 10: the next threshold


def test_credits_added_above_a_threshold_re_arm_it(alerted):
    team, spend = alerted
    assert len(spend(60)) == 2  # 90
    grant(team.workspace, 50)  # 140: re-armed, and a grant itself sends nothing
    assert len(mail.outbox) == 2
    assert len(spend(50)) == 2  # 90 again


def test_a_released_hold_does_not_re_arm_the_threshold(alerted):
    team, spend = alerted
    assert len(spend(60, actual=0)) == 2  # the hold took it to 90; the call cost nothing
    assert available(team.workspace) == 150 * U
    assert spend(60, actual=0) == []


def test_a_repeated_settle_sends_no_alert(alerted, django_capture_on_commit_callbacks):
    team, _ = alerted
    reservation = reserve(team.workspace, 10)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_settle(reservation=reservation, actual=60)  # 90 left: one crossing
    assert len(mail.outbox) == 2
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        # Had it not ended, this would take the balance below 10: it has, so nothing happens.
        services.credits_settle(reservation=reservation, actual=95)
    assert callbacks == []  # no alert task enqueued
    assert len(mail.outbox) == 2
    assert available(team.workspace) == 90 * U


def test_a_grant_that_leaves_the_balance_below_a_threshold_sends_nothing(alpha, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        grant(alpha.workspace, 5)
    assert mail.outbox == []
    assert account(alpha.workspace).alert_level == 2


def test_members_who_turned_low_balance_alerts_off_get_none(alerted):
    team, spend = alerted
    team.admin.preferences = {"notifications": {"low_balance": False}}
    team.admin.save(update_fields=["preferences"])
    assert spend(60) == [team.owner.email]


# ---------------------------------------------------------------------------- trial credits


@override_config(TRIAL_CREDITS="25.5", TRIAL_DAYS=7)
def test_a_new_personal_workspace_gets_the_configured_trial(db):
    before = timezone.now()
    workspace = workspace_create_personal(user=UserFactory.create())
    trial = CreditGrant.objects.get(workspace=workspace)
    assert (trial.source, trial.amount_units) == (Source.TRIAL, 255_000)
    assert trial.expires_at is not None
    assert before + timedelta(days=7) <= trial.expires_at <= timezone.now() + timedelta(days=7)
    assert available(workspace) == 255_000


@override_config(TRIAL_CREDITS="10", TRIAL_DAYS=0)
def test_trial_days_zero_means_the_trial_never_expires(db):
    workspace = workspace_create_personal(user=UserFactory.create())
    assert CreditGrant.objects.get(workspace=workspace).expires_at is None


@override_config(TRIAL_CREDITS="50")
def test_extra_workspaces_get_no_trial(db):
    user = UserFactory.create()
    workspace_create_personal(user=user)
    extra = workspace_create(acting_user=user, name="Side project")
    assert not CreditGrant.objects.filter(workspace=extra).exists()
    assert CreditAccount.objects.filter(workspace=extra).exists()


@override_config(TRIAL_CREDITS="0")
def test_zero_trial_credits_grants_nothing(db):
    workspace = workspace_create_personal(user=UserFactory.create())
    assert not CreditGrant.objects.filter(workspace=workspace).exists()
    assert CreditAccount.objects.filter(workspace=workspace).exists()


@override_config(TRIAL_CREDITS="lots")
def test_a_mistyped_trial_setting_does_not_break_sign_up(db):
    workspace = workspace_create_personal(user=UserFactory.create())
    assert not CreditGrant.objects.filter(workspace=workspace).exists()


@override_config(TRIAL_CREDITS="50", TRIAL_DAYS=14)
def test_sign_up_gives_the_personal_workspace_its_trial(client):
    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"},
    )
    trial = CreditGrant.objects.get(workspace__memberships__user__email="new@example.com")
    assert (trial.source, trial.amount_units) == (Source.TRIAL, 50 * U)


def test_granting_the_trial_twice_gives_it_once(ws):
    first = services.credits_grant_trial(workspace=ws)
    assert first is not None
    assert services.credits_grant_trial(workspace=ws) == first
    assert account(ws).balance_units == first.amount_units


# ---------------------------------------------------------------------------- reconcile


def test_reconcile_finds_no_drift_in_a_ledger_written_by_services(ws):
    grant(ws, 10, Source.TRIAL, days=3)
    services.credits_settle(reservation=reserve(ws, 4), actual=5)
    reserve(ws, 2)
    assert services.credits_reconcile(fix=False) == []


def test_reconcile_reports_drift_and_fixes_it_under_an_audit_row(ws):
    purchased = grant(ws, 10)
    reserve(ws, 4)
    acct = account(ws)
    # Corrupt the projections behind the services' back (as a bad manual SQL fix would).
    CreditAccount.objects.filter(pk=acct.pk).update(balance_units=50 * U)
    CreditGrant.objects.filter(pk=purchased.pk).update(held_units=0)

    drift = services.credits_reconcile(fix=False)
    assert drift == [
        services.Drift(acct.pk, ws.pk, None, "balance_units", 50 * U, 10 * U),
        services.Drift(acct.pk, ws.pk, purchased.pk, "held_units", 0, 4 * U),
    ]
    assert account(ws).balance_units == 50 * U  # reporting changes nothing
    assert not AuditEvent.objects.filter(action="credits.reconcile").exists()

    staff = UserFactory.create(is_staff=True)
    assert services.credits_reconcile(fix=True, acting_user=staff) == drift
    assert services.credits_reconcile(fix=False) == []
    event = AuditEvent.objects.get(action="credits.reconcile")
    assert (event.actor, event.workspace_id) == (staff, ws.pk)
    assert len(event.metadata["drift"]) == 2


def test_reconcile_counts_a_stray_entry(ws):
    grant(ws, 10)
    acct = account(ws)
    LedgerEntry.objects.create(
        workspace=ws, account=acct, kind=EntryKind.ADJUST, amount_units=U, idempotency_key="stray"
    )
    [drift] = services.credits_reconcile(fix=False)
    assert (drift.grant_id, drift.field, drift.stored, drift.expected) == (None, "balance_units", 10 * U, 11 * U)
    # Restore the invariant the autouse check expects.
    LedgerEntry.objects.filter(idempotency_key="stray").delete()


class _RefusingMailBackend:
    """An SMTP server that refuses every message (the network edge)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        raise ConnectionRefusedError("smtp down")


def test_a_failing_mail_server_does_not_fail_the_charge(alerted, settings):
    team, spend = alerted
    settings.EMAIL_BACKEND = f"{__name__}._RefusingMailBackend"
    spend(60)  # crosses 100: the alert cannot be sent, the charge still stands
    account = CreditAccount.objects.get(workspace=team.workspace)
    assert account.balance_units == 90 * U
    assert_ledger_consistent()

"""Per-key spending caps: what a key spent is the credits of the reservations made for it
(`credits_reserve(related=key)`): a hold counts in full until it ends, a settled call counts
its charge, a released one nothing. Days and months are UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.apikeys.exceptions import ApiKeyCapReached
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_check_spending_cap, apikey_reserve, apikey_spent_units
from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import Reservation
from apps.credits.services import credits_release, credits_reserve, credits_settle
from tests.apikeys.conftest import make_key
from tests.conftest import Team
from tests.credits.helpers import Clock, assert_ledger_consistent
from tests.credits.usage_data import fund

pytestmark = pytest.mark.django_db

CREDIT = 10_000  # units
MAR_10 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class Calls:
    """Reservations for a key through the credits services, as the generation pipeline makes them."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.n = 0

    def reserve(self, key: ApiKey | None, credits: int) -> Reservation:
        self.n += 1
        return credits_reserve(
            workspace=self.team.workspace, units=credits * CREDIT, idempotency_key=f"call-{self.n}", related=key
        )

    def settled(self, key: ApiKey | None, held: int, charged: int) -> Reservation:
        return credits_settle(reservation=self.reserve(key, held), actual_units=charged * CREDIT)

    def released(self, key: ApiKey | None, held: int) -> Reservation:
        return credits_release(reservation=self.reserve(key, held))


@pytest.fixture
def calls(alpha: Team) -> Calls:
    fund(alpha.workspace, "1000")
    return Calls(alpha)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch, start=MAR_10)


def test_spend_counts_holds_and_charges_but_not_releases(alpha, calls, clock):
    key, _ = make_key(alpha)
    calls.settled(key, held=10, charged=3)
    calls.reserve(key, 4)
    calls.released(key, 50)

    assert apikey_spent_units(key=key) == (7 * CREDIT, 7 * CREDIT)
    assert_ledger_consistent()


def test_spend_counts_only_this_keys_reservations(alpha, beta, calls, clock):
    key, _ = make_key(alpha)
    other, _ = make_key(alpha, name="other")
    calls.settled(key, held=2, charged=2)
    calls.settled(other, held=5, charged=5)
    calls.reserve(None, 7)  # a web chat call: no key
    fund(beta.workspace, "100")
    beta_key, _ = make_key(beta)
    credits_reserve(workspace=beta.workspace, units=9 * CREDIT, idempotency_key="beta-1", related=beta_key)

    assert apikey_spent_units(key=key) == (2 * CREDIT, 2 * CREDIT)
    assert apikey_spent_units(key=other) == (5 * CREDIT, 5 * CREDIT)


def test_daily_cap_counts_today_only(alpha, calls, clock):
    key, _ = make_key(alpha, daily_cap_units=10 * CREDIT)
    calls.settled(key, held=8, charged=6)
    calls.reserve(key, 3)

    apikey_check_spending_cap(key=key, units=1 * CREDIT)  # 6 + 3 + 1 = 10: at the cap is fine
    with pytest.raises(ApiKeyCapReached) as excinfo:
        apikey_check_spending_cap(key=key, units=1 * CREDIT + 1)

    error = excinfo.value
    assert (error.status_code, error.code, error.cap) == (429, "spending_cap_reached", "daily")
    assert (error.limit_units, error.spent_units, error.requested_units) == (10 * CREDIT, 9 * CREDIT, CREDIT + 1)
    assert "daily spending cap of 10 credits" in error.message

    clock.advance(hours=12)  # 00:00 UTC the next day
    apikey_check_spending_cap(key=key, units=10 * CREDIT)
    # An explicit moment reads that day's spend.
    with pytest.raises(ApiKeyCapReached):
        apikey_check_spending_cap(key=key, units=2 * CREDIT, now=MAR_10)


def test_monthly_cap_counts_the_whole_utc_month(alpha, calls, clock):
    key, _ = make_key(alpha, monthly_cap_units=20 * CREDIT)
    clock.now = datetime(2025, 2, 28, 23, 59, tzinfo=UTC)
    calls.settled(key, held=15, charged=15)  # February: not this month
    clock.now = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    calls.settled(key, held=9, charged=9)
    clock.now = MAR_10
    calls.reserve(key, 6)

    assert apikey_spent_units(key=key) == (6 * CREDIT, 15 * CREDIT)
    apikey_check_spending_cap(key=key, units=5 * CREDIT)
    with pytest.raises(ApiKeyCapReached) as excinfo:
        apikey_check_spending_cap(key=key, units=6 * CREDIT)
    assert (excinfo.value.cap, excinfo.value.spent_units) == ("monthly", 15 * CREDIT)

    clock.now = datetime(2025, 4, 1, 0, 0, tzinfo=UTC)
    apikey_check_spending_cap(key=key, units=20 * CREDIT)


def test_released_holds_free_the_cap(alpha, calls, clock):
    key, _ = make_key(alpha, daily_cap_units=10 * CREDIT, monthly_cap_units=10 * CREDIT)
    hold = calls.reserve(key, 10)
    with pytest.raises(ApiKeyCapReached):
        apikey_check_spending_cap(key=key, units=1)

    credits_release(reservation=hold)

    apikey_check_spending_cap(key=key, units=10 * CREDIT)


def test_a_key_without_caps_is_never_checked(alpha, calls, clock, django_assert_num_queries):
    key, _ = make_key(alpha)
    calls.settled(key, held=500, charged=500)

    with django_assert_num_queries(0):
        apikey_check_spending_cap(key=key, units=400 * CREDIT)


def test_the_cap_check_is_one_query(alpha, calls, clock, django_assert_num_queries):
    key, _ = make_key(alpha, daily_cap_units=100 * CREDIT, monthly_cap_units=1000 * CREDIT)
    calls.settled(key, held=8, charged=6)

    with django_assert_num_queries(1):
        apikey_check_spending_cap(key=key, units=CREDIT)


# ---------------------------------------------------------------------------- apikey_reserve


def test_reserve_holds_credits_recorded_against_the_key(alpha, calls, clock):
    key, _ = make_key(alpha, daily_cap_units=10 * CREDIT)

    reservation = apikey_reserve(key=key, units=4 * CREDIT, idempotency_key="api-1", service="text", model="m")

    assert (reservation.related_type, reservation.related_id) == ("apikeys.apikey", str(key.pk))
    assert (reservation.status, reservation.amount_units, reservation.workspace_id) == (
        "held",
        4 * CREDIT,
        alpha.workspace.pk,
    )
    assert apikey_spent_units(key=key) == (4 * CREDIT, 4 * CREDIT)
    assert_ledger_consistent()


def test_reserve_refuses_past_the_cap_and_holds_nothing(alpha, calls, clock):
    key, _ = make_key(alpha, daily_cap_units=10 * CREDIT)
    apikey_reserve(key=key, units=7 * CREDIT, idempotency_key="api-1")

    with pytest.raises(ApiKeyCapReached):
        apikey_reserve(key=key, units=4 * CREDIT, idempotency_key="api-2")

    assert not Reservation.objects.filter(idempotency_key="api-2").exists()
    assert_ledger_consistent()


def test_a_replayed_reserve_returns_the_first_hold_even_at_the_cap(alpha, calls, clock):
    key, _ = make_key(alpha, daily_cap_units=10 * CREDIT)
    first = apikey_reserve(key=key, units=10 * CREDIT, idempotency_key="api-1")

    again = apikey_reserve(key=key, units=10 * CREDIT, idempotency_key="api-1")

    assert again.pk == first.pk
    assert Reservation.objects.count() == 1


def test_reserve_still_refuses_what_the_workspace_cannot_pay(alpha, calls, clock):
    key, _ = make_key(alpha)

    with pytest.raises(InsufficientCredits):
        apikey_reserve(key=key, units=1001 * CREDIT, idempotency_key="api-1")

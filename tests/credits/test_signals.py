"""What the ledger announces (apps/credits/signals.py): each signal once, on commit, with its
documented arguments, and never for a change that was rolled back. Also the levels higher apps
ask to watch (`credits_watch_set`), and what credits does when a workspace is created."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from constance.test.pytest import override_config
from django.db import transaction

from apps.credits import services
from apps.credits.exceptions import CreditsError
from apps.credits.models import CreditAccount, CreditGrant, Reservation, Source
from apps.credits.signals import LOW_BALANCE, balance_crossed_level, charge_settled, grant_added
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_create, workspace_create_personal
from tests.credits.helpers import assert_ledger_consistent
from tests.events import Heard, listening, rolled_back
from tests.factories import UserFactory, WorkspaceFactory

U = 10_000


@pytest.fixture(autouse=True)
def _ledger_stays_consistent(db: None) -> Iterator[None]:
    yield
    assert_ledger_consistent()


@pytest.fixture
def ws(db: None) -> Workspace:
    workspace = WorkspaceFactory.create()
    services.credits_account_open(workspace=workspace)
    return workspace


def watched(heard: Heard, watch: str) -> list[tuple[int, int]]:
    """(level, available) of each announced crossing of `watch`."""
    return [(e["level_units"], e["available_units"]) for e in heard.of(balance_crossed_level) if e["watch"] == watch]


SETTLED = ("pk", "workspace_id", "charged_units", "idempotency_key", "service", "model", "user_id")


def fund(ws: Workspace, credits: int, key: str = "fund") -> CreditGrant:
    return services.credits_grant(workspace=ws, amount=credits, source=Source.PURCHASED, idempotency_key=key)


def spend(ws: Workspace, credits: int, key: str) -> Reservation:
    reservation = services.credits_reserve(workspace=ws, amount=credits, idempotency_key=key)
    return services.credits_settle(reservation=reservation, actual=credits)


# ---------------------------------------------------------------------------- charge settled


def test_a_settled_charge_is_announced_once_when_it_commits(ws, django_capture_on_commit_callbacks):
    fund(ws, 10)
    user = UserFactory.create()
    reservation = services.credits_reserve(
        workspace=ws, amount=4, idempotency_key="call-1", user=user, service="text", model="mock-chat"
    )

    with listening(charge_settled) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            services.credits_settle(reservation=reservation, actual=3)
            services.credits_settle(reservation=reservation, actual=3)  # a replay: the first outcome stands
        assert heard.of(charge_settled) == []  # nothing before the commit
        for callback in callbacks:
            callback()

    assert heard.rows(charge_settled, "reservation", *SETTLED) == [
        (reservation.pk, ws.pk, 3 * U, "call-1", "text", "mock-chat", user.pk)
    ]
    assert heard.senders(charge_settled) == [CreditAccount]


def test_a_released_hold_is_no_charge(ws, django_capture_on_commit_callbacks):
    fund(ws, 10)
    reservation = services.credits_reserve(workspace=ws, amount=4, idempotency_key="call-1")

    with listening(charge_settled) as heard, django_capture_on_commit_callbacks(execute=True):
        services.credits_release(reservation=reservation)

    assert heard.of(charge_settled) == []


def test_a_charge_rolled_back_is_not_announced(ws, django_capture_on_commit_callbacks):
    fund(ws, 10)
    reservation = services.credits_reserve(workspace=ws, amount=4, idempotency_key="call-1")

    with listening(charge_settled) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: services.credits_settle(reservation=reservation, actual=3))

    assert heard.of(charge_settled) == []
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.HELD


def test_what_the_sweeper_settles_is_announced(ws, django_capture_on_commit_callbacks):
    fund(ws, 10)
    reservation = services.credits_reserve(workspace=ws, amount=4, idempotency_key="dead-caller")
    services.credits_checkpoint(reservation=reservation, delivered_units=2 * U)

    with listening(charge_settled) as heard, django_capture_on_commit_callbacks(execute=True):
        services.credits_sweep(older_than=timedelta(0), now=reservation.created_at + timedelta(hours=1))

    assert heard.rows(charge_settled, "reservation", "pk", "charged_units", "idempotency_key") == [
        (reservation.pk, 2 * U, "dead-caller")
    ]


# ---------------------------------------------------------------------------- balance crossed a level


def test_crossing_a_low_balance_threshold_is_announced_once_on_commit(ws, django_capture_on_commit_callbacks):
    fund(ws, 100)
    CreditAccount.objects.filter(workspace=ws).update(alert_thresholds=[50 * U, 10 * U])

    with listening(balance_crossed_level) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            spend(ws, 60, "s1")  # 40 left: below 50
        assert heard.of(balance_crossed_level) == []
        for callback in callbacks:
            callback()
        with django_capture_on_commit_callbacks(execute=True):
            spend(ws, 5, "s2")  # 35: still below 50, above 10: no new crossing

    account = CreditAccount.objects.get(workspace=ws)
    assert heard.of(balance_crossed_level) == [
        {"account": account, "watch": LOW_BALANCE, "level_units": 50 * U, "available_units": 40 * U}
    ]
    assert heard.rows(balance_crossed_level, "account", "workspace_id") == [(ws.pk,)]


def test_a_watched_level_is_announced_at_each_downward_crossing(ws, django_capture_on_commit_callbacks):
    fund(ws, 100)
    services.credits_watch_set(workspace=ws, watch="top-up", level_units=50 * U)

    with listening(balance_crossed_level) as heard, django_capture_on_commit_callbacks(execute=True):
        spend(ws, 40, "s1")  # 60: above
        spend(ws, 20, "s2")  # 40: crosses
        spend(ws, 10, "s3")  # 30: already below
        fund(ws, 30, "more")  # 60: back above (credits added are never a crossing)
        spend(ws, 20, "s4")  # 40: crosses again

    assert watched(heard, "top-up") == [(50 * U, 40 * U), (50 * U, 40 * U)]


def test_a_level_no_longer_watched_is_not_announced(ws, django_capture_on_commit_callbacks):
    fund(ws, 100)
    services.credits_watch_set(workspace=ws, watch="top-up", level_units=50 * U)
    services.credits_watch_set(workspace=ws, watch="top-up", level_units=None)

    with listening(balance_crossed_level) as heard, django_capture_on_commit_callbacks(execute=True):
        spend(ws, 60, "s1")

    assert watched(heard, "top-up") == []
    assert CreditAccount.objects.get(workspace=ws).watch_levels == {}


def test_a_crossing_rolled_back_is_not_announced(ws, django_capture_on_commit_callbacks):
    fund(ws, 100)
    services.credits_watch_set(workspace=ws, watch="top-up", level_units=50 * U)

    with listening(balance_crossed_level) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: spend(ws, 60, "s1"))

    assert heard.of(balance_crossed_level) == []


@pytest.mark.parametrize(
    ("watch", "level"), [(LOW_BALANCE, 10), ("", 10), ("x" * 41, 10), ("top-up", 0), ("top-up", -5), ("top-up", 1.5)]
)
def test_watching_needs_a_name_of_its_own_and_a_positive_level(ws, watch, level):
    # Inside a transaction, as its caller (`topup_settings_update`) calls it: it joins that one.
    with pytest.raises(CreditsError), transaction.atomic():
        services.credits_watch_set(workspace=ws, watch=watch, level_units=level)

    assert CreditAccount.objects.get(workspace=ws).watch_levels == {}


# ---------------------------------------------------------------------------- grant added


def test_a_new_grant_is_announced_once_on_commit(ws, django_capture_on_commit_callbacks):
    with listening(grant_added) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            grant = services.credits_grant(
                workspace=ws, amount="2.5", source=Source.BONUS, idempotency_key="promo", reference="spring"
            )
            services.credits_grant(workspace=ws, amount="2.5", source=Source.BONUS, idempotency_key="promo")  # replay
        assert heard.of(grant_added) == []
        for callback in callbacks:
            callback()

    assert heard.rows(grant_added, "grant", "pk", "workspace_id", "amount_units", "source", "reference") == [
        (grant.pk, ws.pk, 25_000, Source.BONUS, "spring")
    ]


def test_a_grant_rolled_back_is_not_announced(ws, django_capture_on_commit_callbacks):
    with listening(grant_added) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: fund(ws, 5))

    assert heard.of(grant_added) == []
    assert not CreditGrant.objects.exists()


# ---------------------------------------------------------------------------- new workspaces


@override_config(TRIAL_CREDITS="5")
def test_every_new_workspace_has_its_account_and_only_the_personal_one_a_trial(db):
    user = UserFactory.create()

    personal = workspace_create_personal(user=user)
    team = workspace_create(acting_user=user, name="Team")

    assert CreditAccount.objects.filter(workspace__in=[personal, team]).count() == 2
    assert list(CreditGrant.objects.values_list("workspace_id", "source")) == [(personal.pk, Source.TRIAL)]

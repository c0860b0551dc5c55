"""`manage.py credits`: grant, balance, reconcile, sweep and expire, called as ops would call
them, with the clear refusals a mistyped command deserves."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from constance.test.pytest import override_config
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.credits.management.commands.credits import Command
from apps.credits.models import CreditAccount, CreditGrant, EntryKind, LedgerEntry, Reservation, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_checkpoint, credits_grant, credits_reconcile, credits_reserve
from apps.workspaces.models import Workspace
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


GRANT = ["grant", "--workspace", "acme", "--amount", "10", "--source", "bonus", "--reason", "x"]


def run(*args: Any) -> list[str]:
    out = io.StringIO()
    call_command("credits", *[str(a) for a in args], stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def acme() -> Workspace:
    return WorkspaceFactory.create(name="Acme", slug="acme")


def fund(workspace: Workspace, amount: str = "100", **kwargs: Any) -> CreditGrant:
    kwargs.setdefault("source", Source.PURCHASED)
    kwargs.setdefault("idempotency_key", f"fund-{workspace.pk}-{CreditGrant.objects.count()}")
    return credits_grant(workspace=workspace, amount=amount, **kwargs)


def available(workspace: Workspace) -> int:
    return credits_balance(workspace=workspace).available_units


# ---------------------------------------------------------------------------- grant


def test_grant_adds_a_bonus_grant_and_prints_one_line(acme):
    lines = run("grant", "--workspace", "acme", "--amount", "250.5", "--source", "bonus", "--reason", "Launch promo")

    grant = CreditGrant.objects.get(workspace=acme)
    assert (grant.source, grant.amount_units, grant.reason, grant.expires_at) == (
        "bonus",
        2_505_000,
        "Launch promo",
        None,
    )
    assert lines == [
        f"credits grant: 250.5 bonus credits to acme (grant #{grant.pk}, never expires); 250.5 available now."
    ]
    entry = LedgerEntry.objects.get(grant=grant)
    assert (entry.kind, entry.amount_units) == (EntryKind.GRANT, 2_505_000)
    assert available(acme) == 2_505_000
    assert_ledger_consistent()


def test_grant_expires_at_the_end_of_the_given_day(acme):
    last_day = timezone.localdate() + timedelta(days=30)

    lines = run(*GRANT, "--expires", last_day.isoformat())

    grant = CreditGrant.objects.get(workspace=acme)
    next_day = last_day + timedelta(days=1)
    assert grant.expires_at == datetime(next_day.year, next_day.month, next_day.day, tzinfo=UTC)
    assert f"expires {next_day.isoformat()} 00:00 UTC" in lines[0]


def test_grant_may_expire_tonight(acme):
    run(*GRANT, "--expires", timezone.localdate().isoformat())

    expires_at = CreditGrant.objects.get(workspace=acme).expires_at
    assert expires_at is not None
    assert expires_at > timezone.now()


def test_grant_with_the_same_key_twice_grants_once(acme):
    args = ["grant", "--workspace", "acme", "--amount", "5", "--source", "bonus", "--reason", "x", "--key", "promo-1"]
    run(*args)

    lines = run(*args)

    grant = CreditGrant.objects.get(workspace=acme)
    assert grant.idempotency_key == "promo-1"
    assert lines == [f"credits grant: key 'promo-1' already used by grant #{grant.pk} (5 bonus); nothing changed."]
    assert available(acme) == 50_000


def test_grant_refuses_a_key_used_for_another_workspace(acme):
    other = WorkspaceFactory.create(slug="other")
    fund(other, "5", idempotency_key="promo-1")

    with pytest.raises(CommandError, match="already used for the workspace 'other'"):
        run("grant", "--workspace", "acme", "--amount", "5", "--source", "bonus", "--reason", "x", "--key", "promo-1")

    assert not CreditGrant.objects.filter(workspace=acme).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "nope"], "No workspace with the slug 'nope'"),
        (["--amount", "abc"], "'abc' is not an amount of credits"),
        (["--amount", "1.00001"], "at most 4 decimal places"),
        (["--amount", "0"], "greater than zero"),
        (["--amount", "-5"], "greater than zero"),
        (["--expires", "2020-01-01"], "in the past"),
        (["--expires", "31/12/2030"], "not a date; use YYYY-MM-DD"),
        (["--source", "gift"], "invalid choice: 'gift'"),
        (["--reason", "  "], "--reason cannot be empty"),
    ],
)
def test_grant_refuses_bad_input_with_a_clear_message(acme, args, message):
    options = {"--workspace": "acme", "--amount": "5", "--source": "bonus", "--reason": "x"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))

    with pytest.raises(CommandError, match=message):
        run("grant", *[item for pair in options.items() for item in pair])

    assert not CreditGrant.objects.exists()


def test_grant_requires_a_reason(acme):
    with pytest.raises(CommandError, match="--reason"):
        run("grant", "--workspace", "acme", "--amount", "5", "--source", "bonus")


def test_grant_refuses_a_deleted_workspace(acme):
    Workspace.objects.filter(pk=acme.pk).update(deleted_at=timezone.now())

    with pytest.raises(CommandError, match="'acme' is deleted"):
        run("grant", "--workspace", "acme", "--amount", "5", "--source", "bonus", "--reason", "x")


# ---------------------------------------------------------------------------- balance


def test_balance_shows_available_held_and_each_grant_with_its_expiry(acme):
    soon = timezone.now() + timedelta(days=3)
    fund(acme, "100", source=Source.PURCHASED)
    fund(acme, "20", source=Source.TRIAL, expires_at=soon)
    credits_reserve(workspace=acme, amount="30", idempotency_key="call")

    lines = run("balance", "--workspace", "acme")

    assert lines[0] == "credits balance: acme: 90 available, 30 held, 2 grant(s) with credits left."
    trial, purchased = lines[1:]
    assert trial.split()[:2] == ["Trial", "0"]  # consumed first: soonest to expire
    assert f"expires {soon.strftime('%Y-%m-%d %H:%M')} UTC" in trial
    assert purchased.split() == ["Purchased", "90", "never", "expires"]


def test_balance_of_a_workspace_without_credits(acme):
    assert run("balance", "--workspace", "acme") == [
        "credits balance: acme: 0 available, 0 held, 0 grant(s) with credits left."
    ]


def test_balance_of_an_unknown_workspace_is_refused():
    with pytest.raises(CommandError, match="No workspace with the slug 'ghost'"):
        run("balance", "--workspace", "ghost")


# ---------------------------------------------------------------------------- reconcile


def _corrupt(workspace: Workspace) -> CreditGrant:
    """A projection that no longer matches its entries (a manual SQL edit gone wrong)."""
    grant = fund(workspace, "10")
    CreditAccount.objects.filter(workspace=workspace).update(balance_units=F("balance_units") + 5_000)
    CreditGrant.objects.filter(pk=grant.pk).update(balance_units=F("balance_units") + 5_000)
    return grant


def test_reconcile_reports_a_clean_ledger(acme):
    fund(acme, "10")
    credits_reserve(workspace=acme, amount="3", idempotency_key="call")

    lines = run("reconcile")

    assert lines == [f"credits reconcile: no drift; {CreditAccount.objects.count()} account(s) match the ledger."]


def test_reconcile_fails_on_drift_without_changing_anything(acme):
    grant = _corrupt(acme)

    out = io.StringIO()
    with pytest.raises(
        CommandError, match=r"2 drift\(s\) in 1 account\(s\); run `manage.py credits reconcile --fix`"
    ) as exc:
        call_command("credits", "reconcile", stdout=out)

    assert exc.value.returncode == 1  # the exit status of `manage.py credits reconcile`
    assert out.getvalue().splitlines() == [
        "  acme: account balance_units is 10.5, the ledger says 10",
        f"  acme: grant #{grant.pk} balance_units is 10.5, the ledger says 10",
    ]
    assert CreditAccount.objects.get(workspace=acme).balance_units == 105_000


def test_reconcile_fix_rewrites_projections_from_the_ledger(acme):
    _corrupt(acme)
    healthy = WorkspaceFactory.create(slug="healthy")
    fund(healthy, "7")

    lines = run("reconcile", "--fix")

    assert lines[-1] == "credits reconcile: fixed 2 drift(s) in 1 account(s) from the ledger."
    assert CreditAccount.objects.get(workspace=acme).balance_units == 100_000
    assert credits_reconcile(fix=False) == []
    assert_ledger_consistent()
    assert AuditEvent.objects.filter(action="credits.reconcile", workspace=acme).count() == 1
    assert run("reconcile")[0].startswith("credits reconcile: no drift")


# ---------------------------------------------------------------------------- sweep & expire


def _age(reservation: Reservation, minutes: int) -> None:
    Reservation.objects.filter(pk=reservation.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))


def test_sweep_ends_stale_holds_and_leaves_fresh_ones(acme):
    fund(acme, "100")
    stale = credits_reserve(workspace=acme, amount="10", idempotency_key="stale")
    delivered = credits_reserve(workspace=acme, amount="10", idempotency_key="delivered")
    fresh = credits_reserve(workspace=acme, amount="10", idempotency_key="fresh")
    credits_checkpoint(reservation=delivered, delivered_units=40_000)
    _age(stale, 45)
    _age(delivered, 45)
    _age(fresh, 5)

    lines = run("sweep", "--older-than", "30")

    assert lines == ["credits sweep: settled 1, released 1 hold(s) older than 30 min."]
    statuses = dict(Reservation.objects.values_list("idempotency_key", "status"))
    assert statuses == {"stale": "released", "delivered": "settled", "fresh": "held"}
    assert Reservation.objects.get(idempotency_key="delivered").charged_units == 40_000
    assert available(acme) == 1_000_000 - 40_000 - 100_000
    assert_ledger_consistent()


@override_config(RESERVATION_MAX_AGE_MINUTES=60)
def test_sweep_defaults_to_the_configured_age(acme):
    fund(acme, "100")
    young = credits_reserve(workspace=acme, amount="10", idempotency_key="young")
    _age(young, 45)

    assert run("sweep") == ["credits sweep: settled 0, released 0 hold(s) older than 60 min."]
    assert Reservation.objects.get(pk=young.pk).status == Reservation.Status.HELD


def test_sweep_refuses_a_zero_age():
    with pytest.raises(CommandError, match="at least 1 minute"):
        run("sweep", "--older-than", "0")


def test_expire_removes_credits_past_their_expiry(acme):
    fund(acme, "100", source=Source.PURCHASED)
    trial = fund(acme, "12.5", source=Source.TRIAL, expires_at=timezone.now() + timedelta(days=1))
    # Time passes: the trial ended an hour ago.
    past = timezone.now() - timedelta(hours=1)
    CreditGrant.objects.filter(pk=trial.pk).update(expires_at=past)
    CreditAccount.objects.filter(workspace=acme).update(next_expiry_at=past)

    lines = run("expire")

    assert lines == ["credits expire: 12.5 credits expired."]
    assert CreditAccount.objects.get(workspace=acme).balance_units == 1_000_000
    assert run("expire") == ["credits expire: 0 credits expired."]
    assert_ledger_consistent()


# ---------------------------------------------------------------------------- help


def test_help_says_when_to_run_each_subcommand():
    text = Command().create_parser("manage.py", "credits").format_help()

    for subcommand in ("grant", "balance", "reconcile", "sweep", "expire"):
        assert f"\n  {subcommand} " in text
    assert "exits non-zero on drift" in text
    assert "Celery beat" in text


def test_a_subcommand_is_required():
    with pytest.raises(CommandError, match="SUBCOMMAND"):
        run()

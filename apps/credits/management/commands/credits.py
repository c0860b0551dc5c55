"""`manage.py credits <grant|balance|reconcile|sweep|expire>`: the credits operations for ops.
Every subcommand calls the same services as the admin and the periodic tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.core.commands import SubcommandCommand, amount_option, find, local_time
from apps.credits.amounts import AMOUNT_HINT, format_credits, to_credits, to_units
from apps.credits.exceptions import CreditsError
from apps.credits.models import CreditAccount, CreditGrant, Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_expire, credits_grant, credits_reconcile, credits_sweep
from apps.workspaces.models import Workspace

HELP = """Credits operations. Subcommands:

  grant      Give a workspace credits (promotion, goodwill, support case). Replaying the
             same --key changes nothing, so a retried script never grants twice.
  balance    Show what a workspace can spend, what is held, and each grant with its expiry.
  reconcile  Recompute every balance from the ledger. Run after an incident, a restore or a
             manual database change, and from monitoring: it exits non-zero on drift.
             Add --fix to rewrite the drifting balances from the ledger.
  sweep      End holds older than the configured age (normally every minute from Celery beat;
             run by hand if the workers were down).
  expire     Remove the credits of grants past their expiry (normally every 5 minutes from
             Celery beat; run by hand if the workers were down).

`manage.py credits <subcommand> --help` shows each one's options."""


def _workspace(slug: str) -> Workspace:
    return find(Workspace.objects.all(), what="workspace", slug=slug)


def _amount(text: str) -> Decimal:
    units = amount_option("--amount", text, parse=to_units, expected=AMOUNT_HINT)
    assert units is not None  # a required option
    return to_credits(units)


def _expiry(text: str | None) -> datetime | None:
    """The credits are usable through the given date: they expire at the start of the next day
    (in the site's time zone)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--expires {text!r} is not a date; use YYYY-MM-DD.") from exc
    expires_at = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    if expires_at <= timezone.now():
        raise CommandError(f"--expires {text} is in the past.")
    return expires_at


def _when(moment: datetime | None) -> str:
    return "never expires" if moment is None else "expires " + local_time(moment, zone=True)


class Command(SubcommandCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        commands = self.subcommands(parser)

        grant = commands.add_parser(
            "grant",
            help="Give a workspace credits.",
            description="Give a workspace credits from a source (bonus for promotions and support). "
            "Prints the grant and the new available balance.",
        )
        grant.add_argument("--workspace", required=True, metavar="SLUG")
        grant.add_argument("--amount", required=True, metavar="N", help="Credits, e.g. 100 or 2.5.")
        grant.add_argument("--source", required=True, choices=Source.values)
        grant.add_argument("--reason", required=True, help="Kept in the ledger with the grant.")
        grant.add_argument("--reference", default="", help="Invoice, ticket or promotion it comes from.")
        grant.add_argument(
            "--expires", metavar="YYYY-MM-DD", help="Last day the credits can be used (default: never expire)."
        )
        grant.add_argument(
            "--key", help="Idempotency key: running again with the same key grants nothing more (default: new)."
        )

        balance = commands.add_parser("balance", help="Show a workspace's credits.")
        balance.add_argument("--workspace", required=True, metavar="SLUG")

        reconcile = commands.add_parser(
            "reconcile",
            help="Check every balance against the ledger.",
            description="Recompute every account and grant balance from the ledger entries and list the "
            "differences. Without --fix, exits with status 1 when there is any.",
        )
        reconcile.add_argument("--fix", action="store_true", help="Rewrite drifting balances from the ledger.")

        sweep = commands.add_parser("sweep", help="End stale holds now.")
        sweep.add_argument(
            "--older-than",
            type=int,
            metavar="MINUTES",
            help="Age of holds to end (default: the RESERVATION_MAX_AGE_MINUTES setting).",
        )

        commands.add_parser("expire", help="Apply due grant expiries now.")

    def handle_grant(self, options: dict[str, Any]) -> None:
        workspace = _workspace(options["workspace"])
        amount = _amount(options["amount"])
        expires_at = _expiry(options["expires"])
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("--reason cannot be empty.")
        key = options["key"] or f"cli-grant:{uuid.uuid4().hex}"
        previous = CreditGrant.objects.filter(idempotency_key=key).select_related("workspace").first()
        if previous is not None:
            if previous.workspace_id != workspace.pk:
                raise CommandError(f"The key {key!r} was already used for the workspace {previous.workspace.slug!r}.")
            self.summary(
                f"key {key!r} already used by grant #{previous.pk} "
                f"({format_credits(previous.amount_units)} {previous.source}); nothing changed."
            )
            return
        try:
            grant = credits_grant(
                workspace=workspace,
                amount=amount,
                source=options["source"],
                idempotency_key=key,
                expires_at=expires_at,
                reference=options["reference"],
                reason=reason,
            )
        except CreditsError as exc:
            raise CommandError(exc.message) from exc
        available = credits_balance(workspace=workspace).available_units
        self.summary(
            f"{format_credits(grant.amount_units)} {grant.source} credits to {workspace.slug} "
            f"(grant #{grant.pk}, {_when(grant.expires_at)}); {format_credits(available)} available now."
        )

    def handle_balance(self, options: dict[str, Any]) -> None:
        workspace = _workspace(options["workspace"])
        balance = credits_balance(workspace=workspace, with_grants=True)
        self.summary(
            f"{workspace.slug}: {format_credits(balance.available_units)} available, "
            f"{format_credits(balance.held_units)} held, {len(balance.grants)} grant(s) with credits left."
        )
        for grant in balance.grants:
            self.stdout.write(
                f"  {grant.label:<13} {format_credits(grant.available_units):>14}  {_when(grant.expires_at)}"
            )

    def handle_reconcile(self, options: dict[str, Any]) -> None:
        fix = options["fix"]
        drifts = credits_reconcile(fix=fix)
        accounts = CreditAccount.objects.count()
        if not drifts:
            self.summary(f"no drift; {accounts} account(s) match the ledger.")
            return
        slugs = dict(Workspace.objects.filter(pk__in={d.workspace_id for d in drifts}).values_list("pk", "slug"))
        for d in drifts:
            where = "account" if d.grant_id is None else f"grant #{d.grant_id}"
            self.stdout.write(
                f"  {slugs.get(d.workspace_id, d.workspace_id)}: {where} {d.field} is {format_credits(d.stored)}, "
                f"the ledger says {format_credits(d.expected)}"
            )
        affected = len({d.account_id for d in drifts})
        if not fix:
            raise CommandError(
                f"credits reconcile: {len(drifts)} drift(s) in {affected} account(s); "
                "run `manage.py credits reconcile --fix` to rewrite them from the ledger."
            )
        remaining = credits_reconcile(fix=False)
        if remaining:
            raise CommandError(f"credits reconcile: {len(remaining)} drift(s) remain after --fix; investigate.")
        self.summary(f"fixed {len(drifts)} drift(s) in {affected} account(s) from the ledger.")

    def handle_sweep(self, options: dict[str, Any]) -> None:
        minutes = options["older_than"]
        if minutes is None:
            from constance import config

            minutes = int(config.RESERVATION_MAX_AGE_MINUTES)
        if minutes < 1:
            raise CommandError("--older-than must be at least 1 minute.")
        counts = credits_sweep(older_than=timedelta(minutes=minutes))
        self.summary(f"settled {counts['settled']}, released {counts['released']} hold(s) older than {minutes} min.")

    def handle_expire(self, options: dict[str, Any]) -> None:
        units = credits_expire()
        self.summary(f"{format_credits(units)} credits expired.")

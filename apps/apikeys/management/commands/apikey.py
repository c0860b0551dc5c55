"""`manage.py apikey <create|list|revoke>`: workspace API keys for ops and scripts. Acts as the
system (no role check; the audit row names no actor) through the same services as the app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.apikeys.exceptions import ApiKeyError
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.selectors import apikey_list
from apps.apikeys.services import apikey_create, apikey_revoke
from apps.core.commands import SubcommandCommand, amount_option, find, local_time, split_list
from apps.credits.amounts import AMOUNT_HINT, format_credits, to_units
from apps.workspaces.models import Workspace

HELP = """Workspace API keys. Subcommands:

  create  Create a key for a workspace (an integration, a CI job, a customer who cannot use
          the web page). Prints the key once, on the first line, then a summary: store it
          now, it cannot be shown again.
  list    Show a workspace's keys: prefix, name, scopes, dates and state.
  revoke  Revoke a key by its prefix (as shown in lists) or id, e.g. when it has leaked.
          Requests using it are refused from then on.

`manage.py apikey <subcommand> --help` shows each one's options."""


def _workspace(slug: str) -> Workspace:
    return find(Workspace.objects.all(), what="workspace", slug=slug)


def _cap(option: str, text: str | None) -> int | None:
    return amount_option(option, text, parse=to_units, expected=AMOUNT_HINT)


class Command(SubcommandCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        commands = self.subcommands(parser)

        create = commands.add_parser(
            "create",
            help="Create a key; prints it once.",
            description="Create an API key for a workspace. The key is printed once, alone on the first "
            "line (so a script can read it), then a one-line summary.",
        )
        create.add_argument("--workspace", required=True, metavar="SLUG")
        create.add_argument("--name", required=True, help="Where the key is used, e.g. 'Support bot'.")
        create.add_argument(
            "--scopes",
            default=Scope.CHAT.value,
            metavar="A,B",
            help=f"Comma-separated, from: {', '.join(Scope.values)} (default: chat).",
        )
        create.add_argument("--expires-days", type=int, metavar="N", help="Expire after N days (default: never).")
        create.add_argument("--daily-cap", metavar="CREDITS", help="Credits the key may spend per UTC day.")
        create.add_argument("--monthly-cap", metavar="CREDITS", help="Credits the key may spend per UTC month.")
        create.add_argument("--models", metavar="A,B", help="Model ids the key may use (default: all).")
        create.add_argument("--rpm", type=int, metavar="N", help="Requests per minute for this key.")
        create.add_argument("--tpm", type=int, metavar="N", help="Tokens per minute for this key.")

        listing = commands.add_parser("list", help="Show a workspace's keys.")
        listing.add_argument("--workspace", required=True, metavar="SLUG")

        revoke = commands.add_parser("revoke", help="Revoke a key.")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--prefix", help="The key's prefix, as shown in lists (e.g. ak_AbCdEfGh).")
        which.add_argument("--id", type=int, dest="key_id", metavar="ID")

    def handle_create(self, options: dict[str, Any]) -> None:
        workspace = _workspace(options["workspace"])
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1.")
        try:
            key, raw_key = apikey_create(
                workspace=workspace,
                acting_user=None,
                name=options["name"],
                scopes=split_list(options["scopes"]),
                expires_at=timezone.now() + timedelta(days=days) if days else None,
                daily_cap_units=_cap("--daily-cap", options["daily_cap"]),
                monthly_cap_units=_cap("--monthly-cap", options["monthly_cap"]),
                allowed_models=split_list(options["models"]),
                rpm_limit=options["rpm"],
                tpm_limit=options["tpm"],
            )
        except ApiKeyError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw_key)
        caps = [
            f"{label} cap {format_credits(units)} credits"
            for label, units in (("daily", key.daily_cap_units), ("monthly", key.monthly_cap_units))
            if units is not None
        ]
        details = [
            f"scopes {', '.join(key.scopes)}",
            f"expires {local_time(key.expires_at)}",
            *caps,
            f"models {', '.join(key.allowed_models) if key.allowed_models else 'all'}",
        ]
        self.summary(
            f"key {key.prefix}… “{key.name}” (#{key.pk}) for {workspace.slug} "
            f"({'; '.join(details)}). It is shown only this once: store it now."
        )

    def handle_list(self, options: dict[str, Any]) -> None:
        workspace = _workspace(options["workspace"])
        keys = list(apikey_list(workspace=workspace))
        active = sum(1 for key in keys if key.is_active)
        self.summary(f"{workspace.slug}: {len(keys)} key(s), {active} active.")
        for key in keys:
            self.stdout.write(
                f"  {key.prefix}…  {key.name[:30]:<30}  {','.join(key.scopes):<24}  "
                f"created {local_time(key.created_at)}  last used {local_time(key.last_used_at)}  {key.state}"
            )

    def handle_revoke(self, options: dict[str, Any]) -> None:
        keys = ApiKey.objects.select_related("workspace")
        if options["prefix"] is not None:
            key = find(keys, what="API key", prefix=options["prefix"].strip().rstrip("…"))
        else:
            key = find(keys, what="API key", id=options["key_id"])
        if key.revoked_at is not None:
            self.summary(
                f"{key.prefix}… “{key.name}” of {key.workspace.slug} was already revoked "
                f"on {local_time(key.revoked_at)}; nothing changed."
            )
            return
        apikey_revoke(key=key, acting_user=None)
        self.summary(f"revoked {key.prefix}… “{key.name}” of {key.workspace.slug}.")

"""What the management commands share (`credits`, `apikey`, `billing`): subcommands run as
methods, one-line summaries, and options read with a clear message when they are wrong."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter
from django.db.models import Model, QuerySet
from django.utils import timezone

M = TypeVar("M", bound=Model)


class _RawHelp(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the layout of the subcommand list in `help`."""


class SubcommandCommand(BaseCommand):
    """A command made of subcommands (`credits grant`, `apikey create`...). `add_arguments`
    adds them to `subcommands(parser)`; `handle` runs the method `handle_<subcommand>` with the
    options; `summary()` prints the one-line outcome as "<command> <subcommand>: ...". `help`
    keeps its line breaks (it lists the subcommands)."""

    name = ""
    action = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _RawHelp)
        self.name = subcommand
        return super().create_parser(prog_name, subcommand, **kwargs)

    def subcommands(self, parser: CommandParser) -> Any:
        return parser.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")

    def handle(self, *args: Any, **options: Any) -> None:
        self.action = options["action"]
        run: Callable[[dict[str, Any]], None] = getattr(self, f"handle_{self.action.replace('-', '_')}")
        run(options)

    def summary(self, text: str) -> None:
        self.stdout.write(f"{self.name} {self.action}: {text}")


def find(queryset: QuerySet[M], *, what: str, **lookup: Any) -> M:
    """The row of `queryset` with the one field given on the command line (`slug="acme"`), or a
    CommandError saying there is none; a soft-deleted row (`deleted_at` set) is refused too."""
    [(field, value)] = lookup.items()
    found = queryset.filter(**lookup).first()
    if found is None:
        raise CommandError(f"No {what} with the {field} {value!r}.")
    if getattr(found, "deleted_at", None) is not None:
        raise CommandError(f"The {what} {value!r} is deleted.")
    return found


def amount_option(option: str, text: str | None, *, parse: Callable[[str], int], expected: str) -> int | None:
    """The value of an amount option (`--amount 2.5`; `_` may group digits, `1_000`) read by
    `parse`, which raises ValueError on anything else (`to_units`); None when not given.
    CommandError naming the option unless it parses to more than zero."""
    if text is None:
        return None
    try:
        value = parse(text.replace("_", ""))
    except ValueError as exc:
        raise CommandError(f"{option} {text!r} is not {expected}.") from exc
    if value <= 0:
        raise CommandError(f"{option} must be greater than zero.")
    return value


def split_list(text: str | None) -> list[str]:
    """A comma-separated option (`--scopes chat,images`) as its non-empty items."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def local_time(moment: datetime | None, *, never: str = "never", zone: bool = False) -> str:
    """`moment` in the site's time zone to the minute ("2030-01-31 14:05", with `zone` its
    abbreviation after); `never` for None."""
    if moment is None:
        return never
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z" if zone else "%Y-%m-%d %H:%M")

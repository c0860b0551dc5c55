"""A base for management commands made of subcommands (`credits grant`, `apikey create`...)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser, DjangoHelpFormatter


class _RawHelp(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the layout of the subcommand list in `help`."""


class SubcommandCommand(BaseCommand):
    """`help` keeps its line breaks (it lists the subcommands)."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _RawHelp)
        return super().create_parser(prog_name, subcommand, **kwargs)

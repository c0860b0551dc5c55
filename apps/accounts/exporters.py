"""Registry of "export my data" sections. Each app that stores a user's data registers, in its
own `export_sections` module, a function returning JSON-serialisable data for that user (and
only that user); the modules of every installed app are found by name, so accounts never
imports the apps built on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import autodiscover_modules

if TYPE_CHECKING:
    from apps.accounts.models import User

Exporter = Callable[["User"], Any]
_EXPORTERS: dict[str, Exporter] = {}


def register(section: str) -> Callable[[Exporter], Exporter]:
    def decorator(fn: Exporter) -> Exporter:
        _EXPORTERS[section] = fn
        return fn

    return decorator


def sections() -> dict[str, Exporter]:
    # Importing the modules registers their sections (once: imports are cached).
    autodiscover_modules("export_sections")
    return dict(_EXPORTERS)

"""Registry of "export my data" sections. Each app that stores a user's data registers a
function returning JSON-serialisable data for that user (and only that user)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
    # Importing the modules registers their sections.
    import apps.accounts.export_sections
    import apps.workspaces.export_sections  # noqa: F401

    return dict(_EXPORTERS)

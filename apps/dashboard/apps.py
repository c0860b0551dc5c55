from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The app shell and the dashboard: the top layer that reads from every product area
    (chat, media, credits, billing) to show one page and one sidebar; it writes nothing."""

    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

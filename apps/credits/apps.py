from __future__ import annotations

from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "apps.credits"
    label = "credits"
    verbose_name = "Credits"

    def ready(self) -> None:
        # Opens each new workspace's account (and a personal one's trial) and sends the
        # low-balance email; see the module.
        from apps.credits import receivers  # noqa: F401

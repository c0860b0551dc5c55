from __future__ import annotations

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "apps.workspaces"
    label = "workspaces"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        # Personal workspaces at sign-up and the clean-up when an account is deleted.
        from apps.workspaces import receivers  # noqa: F401

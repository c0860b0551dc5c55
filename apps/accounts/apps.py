from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Authentication events come from Django/allauth signals; the receivers only audit.
        from apps.accounts import receivers  # noqa: F401

from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Connects the dj-stripe webhook receiver (signature verified by dj-stripe) to our
        # fulfilment queue, and the auto top-up to the ledger's announcements.
        from apps.billing import receivers, webhooks  # noqa: F401

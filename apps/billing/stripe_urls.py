"""The Stripe webhook URL under dj-stripe's name (`djstripe:djstripe_webhook_by_uuid`), served
by our view that checks the signature first."""

from __future__ import annotations

from django.urls import path

from apps.billing.webhooks import VerifiedWebhookView

app_name = "djstripe"

urlpatterns = [
    path("webhook/<uuid:uuid>/", VerifiedWebhookView.as_view(), name="djstripe_webhook_by_uuid"),
]

"""The one door to the Stripe API. Every call goes through `stripe_client()`, so the key, API
version, retries and (in tests) the base address of a local fake are set in one place. The SDK
is imported here, lazily: `import stripe` costs ~0.4 s and most processes never pay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    import stripe


class PaymentsNotConfigured(Exception):
    """No Stripe secret key: purchases are refused with this message."""

    def __init__(self) -> None:
        super().__init__("Online payments are not configured on this site. Contact support to change your plan.")


def secret_key() -> str:
    if settings.STRIPE_LIVE_MODE:
        return settings.STRIPE_LIVE_SECRET_KEY
    return settings.STRIPE_TEST_SECRET_KEY


def payments_enabled() -> bool:
    return bool(secret_key())


def stripe_client() -> stripe.StripeClient:
    import stripe

    key = secret_key()
    if not key:
        raise PaymentsNotConfigured()
    base = settings.STRIPE_API_BASE
    kwargs: dict[str, Any] = {"max_network_retries": 2}
    if base:
        kwargs["base_addresses"] = {"api": base}
    return stripe.StripeClient(key, **kwargs)


def stripe_options(idempotency_key: str | None = None) -> dict[str, Any]:
    """Request options: an idempotency key makes a retried create return the first object."""
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def to_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject (or a dict from a webhook payload) as a plain dict."""
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)

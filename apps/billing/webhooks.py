"""Stripe webhooks: dj-stripe's endpoint (`/stripe/webhook/<uuid>/`) receives the request,
stores it (`WebhookEventTrigger`) and verifies its signature; this receiver then records the
event for our fulfilment and queues it.

dj-stripe's own processing re-fetches every object from the Stripe API inside the request; a
Stripe hiccup would then fail the delivery and roll back everything. Instead we store the
verified event in dj-stripe's `Event` table ourselves (its processing finds it there and stops)
and fulfil from the signed payload in a task, with our own retry, so a failure is recorded and
retried, never silently dropped.

`VerifiedWebhookView` checks the signature before dj-stripe sees the request: forged requests
are answered 400 without being stored, and logged once a minute at WARNING.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from djstripe import signals
from djstripe.views import ProcessWebhookView

from apps.billing.models import StripeEvent
from apps.core.middleware import client_ip
from apps.core.sites import current_base_url

logger = logging.getLogger(__name__)


@receiver(signals.webhook_post_validate, dispatch_uid="billing.record_event")
def record_verified_event(sender: Any, instance: Any, valid: bool, **kwargs: Any) -> None:
    if not valid:
        return
    payload = instance.json_body
    event_record(payload)


def event_record(payload: dict[str, Any], *, mirror: bool = True) -> StripeEvent | None:
    """Store a verified event (once: a redelivery finds the first row) and queue its
    fulfilment after commit. `mirror`: also write dj-stripe's `Event` row (not for the events
    we build ourselves from a fetched object)."""
    from djstripe.models import Event

    stripe_id = str(payload.get("id") or "")
    if not stripe_id or not payload.get("type"):
        return None
    created = datetime.fromtimestamp(int(payload.get("created") or 0), tz=UTC)
    if mirror and not Event.objects.filter(id=stripe_id).exists():
        Event.objects.create(
            id=stripe_id,
            type=str(payload["type"])[:250],
            livemode=bool(payload.get("livemode")),
            created=created,
            api_version=str(payload.get("api_version") or "")[:64],
            data=payload.get("data") or {},
            request_id=str((payload.get("request") or {}).get("id") or "")[:50]
            if isinstance(payload.get("request"), dict)
            else "",
        )
    try:
        with transaction.atomic():
            event, created_now = StripeEvent.objects.get_or_create(
                stripe_id=stripe_id,
                defaults={
                    "type": str(payload["type"])[:100],
                    "livemode": bool(payload.get("livemode")),
                    "created": created,
                    "payload": payload,
                },
            )
    except IntegrityError:  # a concurrent delivery of the same event inserted it first
        return StripeEvent.objects.get(stripe_id=stripe_id)
    if created_now or event.status in (StripeEvent.Status.PENDING, StripeEvent.Status.FAILED):
        from apps.billing.tasks import process_event

        event_id = event.pk
        base_url = current_base_url()  # where Stripe reached us: links in the emails it causes
        # robust: the event is stored; if the broker is down the retry task picks it up.
        transaction.on_commit(lambda: process_event.delay(event_id, base_url), robust=True)
    return event


# ---------------------------------------------------------------------------- the endpoint

REFUSAL_LOG_SECONDS = 60


def _log_refusal(endpoint_pk: int, reason: str, ip: str | None) -> None:
    """One WARNING line (no traceback) per endpoint and minute: a stream of forged requests
    cannot flood the logs."""
    from django.core.cache import cache

    if cache.add(f"billing:webhook-refused:{endpoint_pk}", 1, timeout=REFUSAL_LOG_SECONDS):
        logger.warning(
            "Refused a Stripe webhook on endpoint %s from %s: %s (further refusals on it are not logged for %s s)",
            endpoint_pk,
            ip or "unknown",
            reason,
            REFUSAL_LOG_SECONDS,
        )


class VerifiedWebhookView(ProcessWebhookView):
    """dj-stripe's webhook endpoint, with the signature checked first: a request that is not
    signed with the endpoint's secret is answered 400 before anything is stored or logged at
    ERROR (dj-stripe stores every request and logs each bad signature with a traceback)."""

    def post(self, request: HttpRequest, uuid: Any) -> HttpResponse:
        import stripe
        from djstripe.enums import WebhookEndpointValidation
        from djstripe.models import WebhookEndpoint

        endpoint = WebhookEndpoint.objects.filter(djstripe_uuid=uuid).first()
        if endpoint is None:
            raise Http404("No such webhook endpoint.")
        ip = client_ip(request)
        signature = request.headers.get("Stripe-Signature", "")
        if not signature:
            _log_refusal(endpoint.pk, "no signature", ip)
            return HttpResponseBadRequest("Missing Stripe-Signature header.")
        if endpoint.djstripe_validation_method == WebhookEndpointValidation.verify_signature:
            secret = endpoint.secret
            if settings.DEBUG:  # as dj-stripe: the Stripe CLI forwards with its own secret
                secret = request.headers.get("X-Djstripe-Webhook-Secret") or secret
            try:
                body = request.body.decode(request.encoding or "utf-8")
                stripe.WebhookSignature.verify_header(body, signature, secret, endpoint.djstripe_tolerance)
            except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
                _log_refusal(endpoint.pk, "invalid signature", ip)
                return HttpResponseBadRequest("Invalid signature.")
        response: HttpResponse = super().post(request, uuid)
        return response

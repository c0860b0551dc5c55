"""Stripe webhooks: dj-stripe's endpoint (`/stripe/webhook/<uuid>/`) receives the request,
stores it (`WebhookEventTrigger`) and verifies its signature; this receiver then records the
event for our fulfilment and queues it.

dj-stripe's own processing re-fetches every object from the Stripe API inside the request; a
Stripe hiccup would then fail the delivery and roll back everything. Instead we store the
verified event in dj-stripe's `Event` table ourselves (its processing finds it there and stops)
and fulfil from the signed payload in a task, with our own retry, so a failure is recorded and
retried, never silently dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.dispatch import receiver
from djstripe import signals

from apps.billing.models import StripeEvent


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
        # robust: the event is stored; if the broker is down the retry task picks it up.
        transaction.on_commit(lambda: process_event.delay(event_id), robust=True)
    return event

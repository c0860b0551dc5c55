"""Billing fixtures: the seeded plans and packs, a local fake Stripe API wired into settings,
and `deliver()`, which posts a Stripe-signed webhook to dj-stripe's real endpoint."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from apps.billing.models import CreditPack, Plan
from apps.billing.seed import billing_seed_catalogue
from tests.fakes.stripe import FakeStripe

if TYPE_CHECKING:
    from djstripe.models import WebhookEndpoint

WEBHOOK_SECRET = "whsec_test_secret"
_event_ids = itertools.count(1)
_clock = itertools.count(1)
_EPOCH = int(time.time()) - 86_400  # events of the last day, in the order they are built


@pytest.fixture
def catalogue(db: None) -> dict[str, Any]:
    """The default plans and packs, with Stripe prices as `billing sync_stripe` would set."""
    billing_seed_catalogue()
    for plan in Plan.objects.exclude(code="free"):
        plan.stripe_product_id = f"prod_{plan.code}"
        plan.stripe_price_monthly_id = f"price_{plan.code}_month"
        plan.stripe_price_yearly_id = f"price_{plan.code}_year"
        plan.save()
    for pack in CreditPack.objects.all():
        pack.stripe_product_id = f"prod_pack_{pack.code}"
        pack.stripe_price_id = f"price_pack_{pack.code}"
        pack.save()
    return {"plans": {p.code: p for p in Plan.objects.all()}, "packs": {p.code: p for p in CreditPack.objects.all()}}


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[FakeStripe]:
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def fake_stripe(stripe_server: FakeStripe, settings: Settings) -> FakeStripe:
    """Payments on, against the local fake (this test's objects and requests only)."""
    stripe_server.reset()
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_" + "0" * 24  # the shape Stripe (and dj-stripe) expect
    settings.STRIPE_API_BASE = stripe_server.base_url
    return stripe_server


@pytest.fixture
def no_stripe(settings: Settings) -> None:
    settings.STRIPE_TEST_SECRET_KEY = ""
    settings.STRIPE_LIVE_SECRET_KEY = ""


@pytest.fixture
def webhook_endpoint(db: None) -> WebhookEndpoint:
    from djstripe.models import WebhookEndpoint

    return WebhookEndpoint.objects.create(
        id="we_test",
        livemode=False,
        url="https://aikeedo.test/stripe/webhook/",
        secret=WEBHOOK_SECRET,
        enabled_events=["*"],
        api_version="2026-08-26.dahlia",
        status="enabled",
        djstripe_uuid=uuid.uuid4(),
    )


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme: `t=<unix>,v1=HMAC_SHA256(secret, "<t>.<body>")`."""
    t = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def event(
    type_: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    """A Stripe event payload around `obj`. `created` defaults to a strictly increasing clock,
    so events built later are newer."""
    return {
        "id": event_id or f"evt_test_{next(_event_ids):06d}",
        "object": "event",
        "api_version": "2026-08-26.dahlia",
        "created": created or _EPOCH + next(_clock),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
        "data": {"object": obj},
    }


@pytest.fixture
def deliver(
    webhook_endpoint: WebhookEndpoint, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> Callable[..., Any]:
    """Post a signed event to dj-stripe's webhook view; returns the response. The fulfilment
    task queued on commit runs before this returns (tasks run inline in tests)."""
    client = Client()
    url = f"/stripe/webhook/{webhook_endpoint.djstripe_uuid}/"

    def post(payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, signature: str | None = None) -> Any:
        body = json.dumps(payload)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                url,
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(body, secret),
            )

    return post

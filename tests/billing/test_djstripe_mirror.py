"""dj-stripe's own copy of Stripe objects, synced after fulfilment from the local fake API."""

from __future__ import annotations

import pytest
import stripe
from django.utils import timezone

from apps.billing.models import BillingAccount, Fulfilment
from tests.billing.conftest import event
from tests.billing.test_webhooks import invoice

pytestmark = pytest.mark.django_db


def test_invoice_paid_is_mirrored_into_djstripe(alpha, catalogue, fake_stripe, deliver, settings, monkeypatch):
    from djstripe.models import Customer, Invoice

    settings.BILLING_MIRROR_DJSTRIPE = True
    monkeypatch.setattr(stripe, "api_base", fake_stripe.base_url)  # dj-stripe uses the module client
    BillingAccount.objects.create(workspace=alpha.workspace, stripe_customer_id="cus_alpha")
    fake_stripe.put("customers", {"id": "cus_alpha", "email": alpha.owner.email, "livemode": False})
    paid = invoice(
        alpha.workspace,
        catalogue["plans"]["professional"],
        invoice_id="in_m",
        start=timezone.now().replace(microsecond=0),
    )
    paid.update(status="paid", livemode=False, created=int(timezone.now().timestamp()))
    fake_stripe.put("invoices", paid)

    deliver(event("invoice.paid", paid))

    assert Fulfilment.objects.filter(key="invoice:in_m").exists()
    assert Customer.objects.filter(id="cus_alpha").exists()
    assert Invoice.objects.filter(id="in_m", customer__id="cus_alpha").exists()

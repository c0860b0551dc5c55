"""What billing announces, with `sender=BillingAccount`. Every signal here is sent on commit
(`apps.core.events.send_on_commit`) from the fulfilment of a verified Stripe event (or its
reconciliation), so each fact is announced once: a duplicate delivery, a reprocess or an
older event arriving late sends nothing. Amounts are integer minor units (cents) with the
ISO currency; credits are ledger units (1/10,000). As in pretix (`order_paid(order=…)`), the
payload is the committed row itself: a receiver reads what it needs from it and never
changes it.
"""

from __future__ import annotations

from django.dispatch import Signal

payment_succeeded = Signal()
"""A payment was received and its credits granted: a credit pack (Checkout), an automatic
top-up, or a subscription invoice. Sent once per payment, only for a non-zero amount (a free
trial's invoice sends nothing).

Keyword arguments:
    fulfilment (Fulfilment): the payment history row: `workspace_id`, `kind` ("pack", "topup"
        or "subscription"), `amount_cents` and `currency` (what was paid), `credit_units`
        (credits granted; 0 for an invoice of a period already over), `payment_intent_id`
        (Stripe's PaymentIntent id; may be empty for an invoice), `stripe_object_id`.
"""

payment_refunded = Signal()
"""A payment was refunded, in full or in part (each partial refund once); its share of the
credits was clawed back, as far as they were not spent.

Keyword arguments:
    fulfilment (Fulfilment): the refund's own row (`kind` "refund"): `amount_cents` is minus
        the amount refunded by this refund, `currency` the payment's, `credit_units` the
        credits taken back (negative or zero, spent ones included), `shortfall_units` those of
        them already spent (could not be clawed back), `payment_intent_id` the refunded payment.
    paid (Fulfilment): the payment refunded (as sent by `payment_succeeded`).
"""

payment_disputed = Signal()
"""A payment was disputed (a chargeback opened): its credits were clawed back, as far as they
were not spent. Same keyword arguments as `payment_refunded`, `fulfilment` being the
dispute's own row (`kind` "dispute", `amount_cents` minus the disputed amount).
"""

subscription_started = Signal()
"""A subscription became live for the workspace (trialing, active, or past due at once): the
first subscription, or a new one after the previous ended.

Keyword arguments:
    account (BillingAccount): the subscribing workspace's billing account (`workspace_id`,
        `subscription_id`: Stripe's subscription id).
    plan_code (str): the plan subscribed to ("" if the price matches no plan).
    interval (str): "month" or "year".
    status (str): `SubscriptionStatus` value.
"""

subscription_changed = Signal()
"""A live subscription changed plan, billing interval or status (e.g. trialing → active,
active → past due), and is still live.

Keyword arguments: as `subscription_started`, plus
    previous_plan_code (str), previous_interval (str), previous_status (str).
"""

subscription_ended = Signal()
"""A live subscription ended (cancelled, its first payment expired, or deleted at Stripe); the
workspace is back on the default plan.

Keyword arguments: as `subscription_started` (`status` being the final one), plan_code being
the plan it ended on.
"""

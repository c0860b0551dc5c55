"""Turning verified Stripe events into plans and credits, exactly once.

Every handler is keyed by Stripe object ids: grants go through `credits_grant` with keys like
`stripe:invoice:<id>`, and each action writes a `Fulfilment` row with a unique key in the same
transaction. A duplicate delivery, a reprocess after a failure or an event arriving after a
newer one therefore changes nothing. Subscription state only moves forward in Stripe's event
time (`BillingAccount.subscription_event_at`).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from apps.audit.services import audit_record
from apps.billing.entitlements import entitlements_push
from apps.billing.models import (
    AutoTopup,
    BillingAccount,
    CreditPack,
    Fulfilment,
    Plan,
    PlanSource,
    StripeEvent,
    SubscriptionStatus,
)
from apps.billing.signals import (
    payment_disputed,
    payment_refunded,
    payment_succeeded,
    subscription_changed,
    subscription_ended,
    subscription_started,
)
from apps.core.events import send_on_commit
from apps.core.sites import current_base_url
from apps.credits.models import Source
from apps.credits.selectors import credits_balance
from apps.credits.services import credits_clawback, credits_grant, credits_refund
from apps.workspaces.models import Workspace

if TYPE_CHECKING:
    from apps.accounts.models import User

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 6 * 3600


class Unattributable(Exception):
    """The event names no workspace we know (yet): retried, since the event that links the
    customer may still be on its way."""


# How long a refund or dispute for a payment we have not fulfilled (yet) keeps being retried:
# its payment's own event may arrive later. After that it is not one of ours.
WAIT_FOR_PAYMENT = timedelta(days=3)


def _payment_not_seen(event: StripeEvent, payment_intent: str) -> Outcome:
    if timezone.now() - event.created < WAIT_FOR_PAYMENT:
        raise Unattributable(f"No fulfilled payment for {payment_intent or '-'} yet.")
    return Outcome(None, ignored=True)


# ---------------------------------------------------------------------------- helpers


def _ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def object_id(value: Any) -> str:
    """An object id from an id or an expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year = moment.year + month // 12
    month = month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def account_for_workspace(workspace_id: int, *, lock: bool = False) -> BillingAccount:
    BillingAccount.objects.get_or_create(workspace_id=workspace_id)
    qs = BillingAccount.objects.select_related("workspace", "plan")
    if lock:
        # Serialises fulfilment for one workspace: subscription state and grants of two events
        # for the same customer (delivered at once) are decided one after the other.
        qs = qs.select_for_update(of=("self",))
    return qs.get(workspace_id=workspace_id)


def _workspace_id(obj: dict[str, Any], *, metadata: dict[str, Any] | None = None) -> int:
    """Our workspace for a Stripe object: its metadata (set at checkout), else its customer."""
    metadata = metadata if metadata is not None else (obj.get("metadata") or {})
    raw = metadata.get("workspace_id") or obj.get("client_reference_id")
    if raw:
        try:
            workspace_id = int(raw)
        except (TypeError, ValueError):
            workspace_id = 0
        if workspace_id and Workspace.objects.filter(pk=workspace_id).exists():
            return workspace_id
    customer = object_id(obj.get("customer"))
    if customer:
        found = (
            BillingAccount.objects.filter(stripe_customer_id=customer).values_list("workspace_id", flat=True).first()
        )
        if found:
            return found
    raise Unattributable(f"No workspace for {obj.get('object')} {obj.get('id')} (customer {customer or '-'}).")


def _plan_for_price(price_id: str, metadata: dict[str, Any]) -> tuple[Plan | None, str]:
    """The plan and interval a Stripe price stands for (or the plan named in metadata)."""
    if price_id:
        plan = Plan.objects.filter(Q(stripe_price_monthly_id=price_id) | Q(stripe_price_yearly_id=price_id)).first()
        if plan is not None:
            interval = Plan.Interval.YEAR if plan.stripe_price_yearly_id == price_id else Plan.Interval.MONTH
            return plan, interval
    code = metadata.get("plan")
    plan = Plan.objects.filter(code=code).first() if code else None
    return plan, str(metadata.get("interval") or Plan.Interval.MONTH)


def _fulfilled(key: str) -> bool:
    return Fulfilment.objects.filter(key=key).exists()


def _grant(
    *,
    workspace: Workspace,
    units: int,
    source: str,
    key: str,
    reference: str,
    reason: str,
    expires_at: datetime | None = None,
    replace_source: bool = False,
) -> Any:
    if units <= 0:
        return None
    from apps.credits.amounts import to_credits

    return credits_grant(
        workspace=workspace,
        amount=to_credits(units),
        source=source,
        idempotency_key=key,
        expires_at=expires_at,
        reference=reference,
        reason=reason,
        replace_source=replace_source,
    )


# ---------------------------------------------------------------------------- handlers


@dataclass(frozen=True)
class Outcome:
    workspace_id: int | None
    ignored: bool = False


def _checkout_completed(event: StripeEvent) -> Outcome:
    session = event.object
    metadata = session.get("metadata") or {}
    workspace_id = _workspace_id(session)
    account = account_for_workspace(workspace_id, lock=True)
    customer = object_id(session.get("customer"))
    if customer and not account.stripe_customer_id:
        account.stripe_customer_id = customer
        account.save(update_fields=["stripe_customer_id", "updated_at"])
    if session.get("mode") == "subscription":
        subscription = object_id(session.get("subscription"))
        if subscription and not account.subscription_id:
            # The subscription's own events carry its state; this only links it early.
            account.subscription_id = subscription
            account.save(update_fields=["subscription_id", "updated_at"])
        return Outcome(workspace_id)
    if metadata.get("kind") != "pack":
        return Outcome(workspace_id, ignored=True)
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        # Delayed payment methods: `checkout.session.async_payment_succeeded` follows.
        return Outcome(workspace_id, ignored=True)
    _fulfil_pack(
        account=account,
        key=f"pack:{session['id']}",
        object_id=session["id"],
        metadata=metadata,
        amount_cents=int(session.get("amount_total") or 0),
        currency=str(session.get("currency") or ""),
        payment_intent=object_id(session.get("payment_intent")),
        event=event,
        kind=Fulfilment.Kind.PACK,
    )
    return Outcome(workspace_id)


def _fulfil_pack(
    *,
    account: BillingAccount,
    key: str,
    object_id: str,
    metadata: dict[str, Any],
    amount_cents: int,
    currency: str,
    payment_intent: str,
    event: StripeEvent | None,
    kind: str,
) -> Fulfilment:
    existing = Fulfilment.objects.filter(key=key).first()
    if existing is not None:
        return existing
    pack = CreditPack.objects.filter(code=metadata.get("pack")).first()
    # The credits promised at checkout (recorded in its metadata) win over today's pack.
    credit_units = int(metadata.get("credit_units") or (pack.credit_units if pack else 0))
    bonus_units = int(metadata.get("bonus_units") or (pack.bonus_units if pack else 0))
    if credit_units <= 0:
        raise ValueError(f"Checkout {object_id} names no credit pack ({metadata.get('pack')!r}).")
    name = pack.name if pack else str(metadata.get("pack"))
    workspace = account.workspace
    # The pack's credits, then its bonus (a grant of its own: it may expire or be clawed back
    # apart), each once per payment.
    grant, _ = (
        _grant(workspace=workspace, units=units, source=source, key=grant_key, reference=object_id, reason=reason)
        for units, source, grant_key, reason in (
            (credit_units, Source.PURCHASED, f"stripe:{key}", f"Credit pack: {name}"),
            (bonus_units, Source.BONUS, f"stripe:{key}:bonus", f"Bonus with credit pack: {name}"),
        )
    )
    fulfilment = Fulfilment.objects.create(
        workspace=workspace,
        key=key,
        kind=kind,
        stripe_object_id=object_id,
        payment_intent_id=payment_intent,
        event=event,
        credit_units=credit_units + bonus_units,
        amount_cents=amount_cents,
        currency=currency,
        description=f"Credit pack: {name}",
        grant=grant,
    )
    _rearm_topup(account)
    if amount_cents > 0:
        from apps.billing.emails import send_receipt

        transaction.on_commit(partial(send_receipt, key, current_base_url()), robust=True)
        _announce_payment(fulfilment)
    return fulfilment


def _announce_payment(fulfilment: Fulfilment) -> None:
    send_on_commit(payment_succeeded, sender=BillingAccount, fulfilment=fulfilment)


def _subscription_fields(sub: dict[str, Any]) -> dict[str, Any]:
    items = (sub.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = item.get("price") or {}
    # Since API version 2025-03-31 the period lives on the items.
    start = sub.get("current_period_start") or item.get("current_period_start")
    end = sub.get("current_period_end") or item.get("current_period_end")
    return {"price_id": object_id(price), "start": _ts(start), "end": _ts(end)}


def _subscription_changed(event: StripeEvent) -> Outcome:
    sub = event.object
    metadata = sub.get("metadata") or {}
    workspace_id = _workspace_id(sub)
    account = account_for_workspace(workspace_id, lock=True)
    fields = _subscription_fields(sub)
    plan, interval = _plan_for_price(fields["price_id"], metadata)
    if sub.get("status") == SubscriptionStatus.TRIALING and plan is not None:
        # Whatever order the events come in, a subscription seen trialing gets its trial credits.
        _grant_trial(account, sub, plan, event)
    if account.subscription_event_at is not None and event.created < account.subscription_event_at:
        return Outcome(workspace_id)  # older than the state we hold: nothing else to apply
    old_ending = sub.get("status") in (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
    if old_ending and account.subscription_id not in ("", sub["id"]) and account.has_subscription:
        return Outcome(workspace_id, ignored=True)  # an old subscription ending; a newer one is live
    before = _SubscriptionState.of(account, sub["id"])
    status = str(sub.get("status") or "")
    if event.type == "customer.subscription.deleted":
        status = SubscriptionStatus.CANCELED
    customer = object_id(sub.get("customer"))
    if customer and not account.stripe_customer_id:
        account.stripe_customer_id = customer
    account.subscription_id = sub["id"]
    account.subscription_status = status if status in SubscriptionStatus.values else SubscriptionStatus.INCOMPLETE
    account.current_period_start = fields["start"]
    account.current_period_end = fields["end"]
    account.cancel_at_period_end = bool(sub.get("cancel_at_period_end"))
    account.trial_ends_at = _ts(sub.get("trial_end"))
    account.subscription_event_at = event.created
    if status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE):
        if plan is not None:
            account.plan = plan
            account.interval = interval
        account.plan_source = PlanSource.STRIPE
        account.plan_expires_at = None
        if status != SubscriptionStatus.PAST_DUE:
            account.payment_failed_at = None
            account.grace_until = None
            account.restricted = False
    elif status in (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED, SubscriptionStatus.UNPAID):
        if account.plan_source == PlanSource.STRIPE:
            # Back to the default (free) plan; credits already granted run to their expiry.
            account.plan = None
            account.plan_source = PlanSource.DEFAULT
            account.interval = ""
        if status == SubscriptionStatus.UNPAID:
            account.restricted = True
    account.save()
    entitlements_push(account=account)
    _announce_subscription(before, _SubscriptionState.of(account, sub["id"]), account)
    return Outcome(workspace_id)


# A subscription in one of these is the workspace's, whatever it owes; the others never started
# (incomplete) or are over.
LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


@dataclass(frozen=True)
class _SubscriptionState:
    live: bool
    plan_code: str
    interval: str
    status: str

    @classmethod
    def of(cls, account: BillingAccount, subscription_id: str) -> _SubscriptionState:
        return cls(
            live=account.subscription_id == subscription_id and account.subscription_status in LIVE_STATUSES,
            plan_code=account.plan.code if account.plan is not None else "",
            interval=account.interval,
            status=account.subscription_status,
        )


def _announce_subscription(before: _SubscriptionState, after: _SubscriptionState, account: BillingAccount) -> None:
    if after.live == before.live and (not after.live or after == before):
        return  # nothing a listener cares about changed
    extra: dict[str, str] = {}
    if after.live and not before.live:
        signal = subscription_started
    elif before.live and not after.live:
        # It ended on the plan it had: the account has moved back to the default plan.
        signal = subscription_ended
        after = replace(after, plan_code=before.plan_code, interval=before.interval)
    else:
        signal = subscription_changed
        extra = {
            "previous_plan_code": before.plan_code,
            "previous_interval": before.interval,
            "previous_status": before.status,
        }
    send_on_commit(
        signal,
        sender=BillingAccount,
        account=account,
        plan_code=after.plan_code,
        interval=after.interval,
        status=after.status,
        **extra,
    )


def _grant_trial(account: BillingAccount, sub: dict[str, Any], plan: Plan, event: StripeEvent) -> None:
    key = f"trial:{sub['id']}"
    trial_end = _ts(sub.get("trial_end"))
    if plan.trial_credit_units <= 0 or _fulfilled(key) or trial_end is None or trial_end <= timezone.now():
        return
    grant = _grant(
        workspace=account.workspace,
        units=plan.trial_credit_units,
        source=Source.TRIAL,
        key=f"stripe:{key}",
        reference=sub["id"],
        reason=f"Trial of {plan.name}",
        expires_at=trial_end,
    )
    Fulfilment.objects.create(
        workspace=account.workspace,
        key=key,
        kind=Fulfilment.Kind.TRIAL,
        stripe_object_id=sub["id"],
        event=event,
        credit_units=plan.trial_credit_units,
        description=f"Trial of {plan.name}",
        period_end=trial_end,
        grant=grant,
    )


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The subscription an invoice bills and that subscription's metadata (both API shapes)."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or invoice.get("subscription_details") or {}
    subscription = object_id(invoice.get("subscription")) or object_id(details.get("subscription"))
    return subscription, dict(details.get("metadata") or {})


def _invoice_line(invoice: dict[str, Any]) -> dict[str, Any]:
    lines = (invoice.get("lines") or {}).get("data") or []
    for line in lines:
        if (line.get("period") or {}).get("end") and not line.get("proration"):
            return line
    return lines[0] if lines else {}


def _line_price(line: dict[str, Any]) -> str:
    price = object_id(line.get("price"))
    if not price:
        details = (line.get("pricing") or {}).get("price_details") or {}
        price = object_id(details.get("price"))
    return price


def _invoice_payment_intent(invoice: dict[str, Any]) -> str:
    direct = object_id(invoice.get("payment_intent"))
    if direct:
        return direct
    for payment in (invoice.get("payments") or {}).get("data") or []:
        found = object_id((payment.get("payment") or {}).get("payment_intent"))
        if found:
            return found
    return ""


def _invoice_paid(event: StripeEvent) -> Outcome:
    invoice = event.object
    subscription, sub_metadata = _invoice_subscription(invoice)
    if not subscription:
        return Outcome(None, ignored=True)  # a one-off invoice: nothing to grant
    workspace_id = _workspace_id(invoice, metadata=sub_metadata)
    account = account_for_workspace(workspace_id, lock=True)
    key = f"invoice:{invoice['id']}"
    if _fulfilled(key):
        return Outcome(workspace_id)
    line = _invoice_line(invoice)
    plan, interval = _plan_for_price(_line_price(line), sub_metadata)
    period = line.get("period") or {}
    start = _ts(period.get("start")) or _ts(invoice.get("period_start")) or event.created
    end = _ts(period.get("end")) or _ts(invoice.get("period_end"))
    trial_invoice = (
        invoice.get("billing_reason") == "subscription_create"
        and int(invoice.get("amount_paid") or 0) == 0
        and plan is not None
        and plan.trial_days > 0
    )
    workspace = account.workspace
    grant = None
    units = 0
    if plan is not None and not trial_invoice and plan.monthly_credit_units > 0:
        units = plan.monthly_credit_units
        # Yearly plans get their credits month by month (`grant_yearly_months`).
        expires = add_months(start, 1) if interval == Plan.Interval.YEAR else end
        if expires is not None and end is not None:
            expires = min(expires, end)
        latest = account.credits_period_start
        if (latest is None or start >= latest) and (expires is None or expires > timezone.now()):
            grant = _grant(
                workspace=workspace,
                units=units,
                source=Source.SUBSCRIPTION,
                key=f"stripe:sub:{subscription}:{int(start.timestamp())}:0",
                reference=invoice["id"],
                reason=f"{plan.name}: credits for the period",
                expires_at=expires,
                replace_source=True,
            )
            account.credits_period_start = start
        else:
            units = 0  # a period already superseded or over: paid, nothing to reset
    account.payment_failed_at = None
    account.grace_until = None
    account.restricted = False
    if not account.subscription_id:
        account.subscription_id = subscription
    account.save()
    entitlements_push(account=account)  # a restriction lifted
    fulfilment = Fulfilment.objects.create(
        workspace=workspace,
        key=key,
        kind=Fulfilment.Kind.SUBSCRIPTION,
        stripe_object_id=invoice["id"],
        payment_intent_id=_invoice_payment_intent(invoice),
        event=event,
        credit_units=units,
        amount_cents=int(invoice.get("amount_paid") or 0),
        currency=str(invoice.get("currency") or ""),
        description=(f"{plan.name} ({interval})" if plan else "Subscription") + (" trial" if trial_invoice else ""),
        invoice_number=str(invoice.get("number") or "")[:64],
        hosted_invoice_url=str(invoice.get("hosted_invoice_url") or ""),
        invoice_pdf=str(invoice.get("invoice_pdf") or ""),
        period_start=start,
        period_end=end,
        grant=grant,
    )
    _rearm_topup(account)
    if fulfilment.amount_cents > 0:
        from apps.billing.emails import send_receipt

        transaction.on_commit(partial(send_receipt, key, current_base_url()), robust=True)
        _announce_payment(fulfilment)
    return Outcome(workspace_id)


def _invoice_payment_failed(event: StripeEvent) -> Outcome:
    from constance import config

    invoice = event.object
    _, sub_metadata = _invoice_subscription(invoice)
    workspace_id = _workspace_id(invoice, metadata=sub_metadata)
    account = account_for_workspace(workspace_id, lock=True)
    key = f"payment_failed:{invoice['id']}:{invoice.get('attempt_count') or 0}"
    if _fulfilled(key):
        return Outcome(workspace_id)
    now = timezone.now()
    if account.payment_failed_at is None:
        account.payment_failed_at = now
        account.grace_until = now + timedelta(days=int(config.BILLING_GRACE_DAYS))
        account.save(update_fields=["payment_failed_at", "grace_until", "updated_at"])
    Fulfilment.objects.create(
        workspace=account.workspace,
        key=key,
        kind=Fulfilment.Kind.PAYMENT_FAILED,
        stripe_object_id=invoice["id"],
        event=event,
        amount_cents=int(invoice.get("amount_due") or 0),
        currency=str(invoice.get("currency") or ""),
        description="Payment failed",
        invoice_number=str(invoice.get("number") or "")[:64],
        hosted_invoice_url=str(invoice.get("hosted_invoice_url") or ""),
    )
    from apps.billing.emails import send_payment_failed

    transaction.on_commit(
        partial(send_payment_failed, workspace_id, account.grace_until, current_base_url()), robust=True
    )
    return Outcome(workspace_id)


def _paid_fulfilment(payment_intent: str) -> Fulfilment | None:
    if not payment_intent:
        return None
    return (
        Fulfilment.objects.filter(
            payment_intent_id=payment_intent,
            kind__in=[Fulfilment.Kind.PACK, Fulfilment.Kind.SUBSCRIPTION, Fulfilment.Kind.TOPUP],
        )
        .select_related("workspace")
        .first()
    )


def _clawed_so_far(payment_intent: str) -> int:
    return -int(
        Fulfilment.objects.filter(
            payment_intent_id=payment_intent, kind__in=[Fulfilment.Kind.REFUND, Fulfilment.Kind.DISPUTE]
        ).aggregate(total=Sum("credit_units"))["total"]
        or 0
    )


def _claw_back(
    *, event: StripeEvent, paid: Fulfilment, key: str, kind: str, units: int, object_id: str, amount_cents: int
) -> None:
    workspace = paid.workspace
    account_for_workspace(workspace.pk, lock=True)
    if _fulfilled(key):
        return
    units = max(0, min(units, paid.credit_units - _clawed_so_far(paid.payment_intent_id)))
    clawed = shortfall = 0
    if units > 0:
        from apps.credits.amounts import to_credits
        from apps.credits.models import CreditGrant

        # The payment's own grants (a pack and its bonus) give back first.
        own_grants = CreditGrant.objects.filter(workspace=workspace, reference=paid.stripe_object_id)
        own = list(own_grants.values_list("pk", flat=True))
        result = credits_clawback(
            workspace=workspace,
            amount=to_credits(units),
            idempotency_key=f"stripe:{key}",
            reason=f"{Fulfilment.Kind(kind).label} of {paid.description or paid.stripe_object_id}",
            reference=object_id,
            from_grants=own,
        )
        clawed, shortfall = result.clawed_units, result.shortfall_units
    fulfilment = Fulfilment.objects.create(
        workspace=workspace,
        key=key,
        kind=kind,
        stripe_object_id=object_id,
        payment_intent_id=paid.payment_intent_id,
        event=event,
        credit_units=-(clawed + shortfall),
        shortfall_units=shortfall,
        amount_cents=-amount_cents,
        currency=paid.currency,
        description=f"{Fulfilment.Kind(kind).label}: {paid.description}",
    )
    signal = payment_refunded if kind == Fulfilment.Kind.REFUND else payment_disputed
    send_on_commit(signal, sender=BillingAccount, fulfilment=fulfilment, paid=paid)


def _charge_refunded(event: StripeEvent) -> Outcome:
    charge = event.object
    paid = _paid_fulfilment(object_id(charge.get("payment_intent")))
    if paid is None:
        return _payment_not_seen(event, object_id(charge.get("payment_intent")))
    paid_cents = int(charge.get("amount_captured") or charge.get("amount") or paid.amount_cents or 0)
    refunded_cents = int(charge.get("amount_refunded") or 0)
    if paid_cents <= 0 or refunded_cents <= 0:
        return Outcome(paid.workspace_id, ignored=True)
    # Refunds are cumulative on the charge: claw back the refunded share of the credits, less
    # what earlier (partial) refunds took. Keyed by the cumulative amount, so each partial
    # refund acts once. Counted under the workspace's lock: two partial refunds handled at
    # once must not both subtract from the same "earlier" total.
    account_for_workspace(paid.workspace_id, lock=True)
    target = paid.credit_units if refunded_cents >= paid_cents else paid.credit_units * refunded_cents // paid_cents
    already = _clawed_so_far(paid.payment_intent_id)
    previous_cents = -int(
        Fulfilment.objects.filter(payment_intent_id=paid.payment_intent_id, kind=Fulfilment.Kind.REFUND).aggregate(
            total=Sum("amount_cents")
        )["total"]
        or 0
    )
    _claw_back(
        event=event,
        paid=paid,
        key=f"refund:{charge['id']}:{refunded_cents}",
        kind=Fulfilment.Kind.REFUND,
        units=target - already,
        object_id=charge["id"],
        amount_cents=max(0, refunded_cents - previous_cents),
    )
    return Outcome(paid.workspace_id)


def _dispute_created(event: StripeEvent) -> Outcome:
    dispute = event.object
    paid = _paid_fulfilment(object_id(dispute.get("payment_intent")))
    if paid is None:
        return _payment_not_seen(event, object_id(dispute.get("payment_intent")))
    _claw_back(
        event=event,
        paid=paid,
        key=f"dispute:{dispute['id']}",
        kind=Fulfilment.Kind.DISPUTE,
        units=paid.credit_units,
        object_id=dispute["id"],
        amount_cents=int(dispute.get("amount") or 0),
    )
    return Outcome(paid.workspace_id)


def _dispute_closed(event: StripeEvent) -> Outcome:
    """A dispute won gives back what it took."""
    dispute = event.object
    if dispute.get("status") != "won":
        return Outcome(None, ignored=True)
    taken = Fulfilment.objects.filter(key=f"dispute:{dispute['id']}").select_related("workspace").first()
    if taken is None:  # the dispute's creation may not have been processed yet
        return _payment_not_seen(event, object_id(dispute.get("payment_intent")))
    key = f"dispute_won:{dispute['id']}"
    account_for_workspace(taken.workspace_id, lock=True)
    if _fulfilled(key):
        return Outcome(taken.workspace_id)
    clawed = -taken.credit_units - taken.shortfall_units
    grant = None
    if clawed > 0:
        from apps.credits.amounts import to_credits

        grant = credits_refund(
            workspace=taken.workspace,
            amount=to_credits(clawed),
            idempotency_key=f"stripe:{key}",
            reason="Dispute won: credits restored",
            source=Source.PURCHASED,
            reference=dispute["id"],
        )
    Fulfilment.objects.create(
        workspace=taken.workspace,
        key=key,
        kind=Fulfilment.Kind.DISPUTE,
        stripe_object_id=dispute["id"],
        payment_intent_id=taken.payment_intent_id,
        event=event,
        credit_units=clawed,
        amount_cents=0,
        currency=taken.currency,
        description="Dispute won: credits restored",
        grant=grant,
    )
    return Outcome(taken.workspace_id)


def _payment_intent_succeeded(event: StripeEvent) -> Outcome:
    """Auto top-ups are off-session PaymentIntents; other intents are fulfilled through their
    checkout session or invoice."""
    intent = event.object
    metadata = intent.get("metadata") or {}
    if metadata.get("kind") != "topup":
        return Outcome(None, ignored=True)
    workspace_id = _workspace_id(intent)
    account = account_for_workspace(workspace_id, lock=True)
    topup_fulfil(account=account, intent=intent, event=event)
    return Outcome(workspace_id)


def topup_fulfil(*, account: BillingAccount, intent: dict[str, Any], event: StripeEvent | None) -> Fulfilment:
    """Grant a succeeded top-up (from the synchronous answer or its webhook, whichever first)."""
    from apps.billing.models import TopupAttempt

    fulfilment = _fulfil_pack(
        account=account,
        key=f"topup:{intent['id']}",
        object_id=intent["id"],
        metadata=intent.get("metadata") or {},
        amount_cents=int(intent.get("amount_received") or intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        payment_intent=intent["id"],
        event=event,
        kind=Fulfilment.Kind.TOPUP,
    )
    TopupAttempt.objects.filter(payment_intent_id=intent["id"]).update(status=TopupAttempt.Status.SUCCEEDED)
    return fulfilment


def _rearm_topup(account: BillingAccount) -> None:
    """Credits arrived: if the balance is back at or above the top-up threshold, the next
    crossing may charge again."""
    if account.topup_armed:
        return
    topup = AutoTopup.objects.filter(workspace_id=account.workspace_id).first()
    threshold = topup.threshold_units if topup else None
    if threshold is not None and credits_balance(workspace=account.workspace).available_units >= threshold:
        account.topup_armed = True
        account.save(update_fields=["topup_armed", "updated_at"])


def _card_summary(event: StripeEvent) -> Outcome:
    """The card on file for the billing page: from a card attached to the customer, or the card
    a successful charge used (the latest event wins)."""
    obj = event.object
    card = obj.get("card") if obj.get("object") == "payment_method" else None
    if card is None:
        card = (obj.get("payment_method_details") or {}).get("card")
    customer = object_id(obj.get("customer"))
    if not card or not customer:
        return Outcome(None, ignored=True)
    account = BillingAccount.objects.filter(stripe_customer_id=customer).first()
    if account is None:
        return Outcome(None, ignored=True)  # not one of our customers (or not linked yet)
    if account.card_updated_at is not None and event.created < account.card_updated_at:
        return Outcome(account.workspace_id, ignored=True)
    month, year = card.get("exp_month"), card.get("exp_year")
    account.card_brand = str(card.get("brand") or "")[:24]
    account.card_last4 = str(card.get("last4") or "")[:4]
    account.card_exp = f"{int(month):02d}/{int(year)}" if month and year else ""
    account.card_updated_at = event.created
    account.save(update_fields=["card_brand", "card_last4", "card_exp", "card_updated_at", "updated_at"])
    return Outcome(account.workspace_id)


HANDLERS: dict[str, Callable[[StripeEvent], Outcome]] = {
    "payment_method.attached": _card_summary,
    "charge.succeeded": _card_summary,
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "customer.subscription.paused": _subscription_changed,
    "customer.subscription.resumed": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
    "payment_intent.succeeded": _payment_intent_succeeded,
}


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


@transaction.atomic(durable=True)
def event_process(*, event_id: int, force: bool = False, acting_user: User | None = None) -> StripeEvent:
    """Fulfil one stored event. Done events are left alone (unless `force`, which still
    cannot grant twice); a failure is recorded with the next retry time and shown to the admin's
    reprocess action through the returned row. A reprocess by staff (`acting_user`) is audited
    as `billing.event_reprocess`, with the status before and after."""
    # Serialises two workers picking up the same event.
    event = StripeEvent.objects.select_for_update().get(pk=event_id)
    before = event.status
    if event.status not in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED) or force:
        _process(event)
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="billing.event_reprocess",
            target=event,
            workspace=event.workspace,
            metadata={
                "stripe_id": event.stripe_id,
                "type": event.type,
                "before": before,
                "after": event.status,
                "error": event.last_error[:500],
            },
        )
    return event


def _process(event: StripeEvent) -> None:
    """Run the event's handler (in a savepoint: a failure rolls back its writes, and is recorded
    on the event) and store the outcome. Caller holds the event's row lock."""
    handler = HANDLERS.get(event.type)
    event.attempts += 1
    if handler is None:
        event.status = StripeEvent.Status.IGNORED
        event.processed_at = timezone.now()
        event.last_error = ""
        event.save()
        return
    try:
        with transaction.atomic():
            outcome = handler(event)
    except Exception as exc:  # recorded and retried; the event is never lost
        logger.exception("Stripe event %s (%s) failed", event.stripe_id, event.type)
        event.status = StripeEvent.Status.FAILED
        event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        event.next_attempt_at = timezone.now() + _retry_delay(event.attempts)
        event.save()
        return
    event.status = StripeEvent.Status.IGNORED if outcome.ignored else StripeEvent.Status.PROCESSED
    event.workspace_id = outcome.workspace_id
    event.processed_at = timezone.now()
    event.last_error = ""
    event.next_attempt_at = None
    event.save()


def events_retry_due(*, now: datetime | None = None, limit: int = 100) -> int:
    """Reprocess failed events whose retry time has come (the periodic task)."""
    now = now or timezone.now()
    due = list(
        StripeEvent.objects.filter(status__in=[StripeEvent.Status.FAILED, StripeEvent.Status.PENDING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(received_at__lte=now - timedelta(seconds=30))
        .order_by("created", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        event_process(event_id=pk)
    return len(due)


def subscription_grant_months(*, now: datetime | None = None) -> int:
    """Yearly plans are paid once a year but grant credits month by month: each month of the
    paid period resets the subscription credits (keyed by period and month, so once)."""
    now = now or timezone.now()
    granted = 0
    accounts = BillingAccount.objects.select_related("workspace", "plan").filter(
        interval=Plan.Interval.YEAR,
        plan_source=PlanSource.STRIPE,
        subscription_status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE],
        credits_period_start__isnull=False,
        restricted=False,
    )
    for account in accounts:
        plan, start = account.plan, account.credits_period_start
        end = account.current_period_end
        if plan is None or start is None or plan.monthly_credit_units <= 0:
            continue
        month = 0
        while add_months(start, month + 1) <= now and (end is None or add_months(start, month + 1) < end):
            month += 1
        if month == 0:
            continue
        key = f"stripe:sub:{account.subscription_id}:{int(start.timestamp())}:{month}"
        from apps.credits.models import CreditGrant

        if CreditGrant.objects.filter(idempotency_key=key).exists():
            continue
        expires = add_months(start, month + 1)
        if end is not None:
            expires = min(expires, end)
        with transaction.atomic(durable=True):
            account_for_workspace(account.workspace_id, lock=True)
            _grant(
                workspace=account.workspace,
                units=plan.monthly_credit_units,
                source=Source.SUBSCRIPTION,
                key=key,
                reference=account.subscription_id,
                reason=f"{plan.name}: credits for month {month + 1} of the year",
                expires_at=expires,
                replace_source=True,
            )
        granted += 1
    return granted


def djstripe_mirror(event: StripeEvent) -> bool:
    """Best effort, after fulfilment: let dj-stripe sync its own copy of the event's object
    (customers, subscriptions, invoices, charges) for its admin and the billing page's invoice
    list. dj-stripe re-fetches each object from Stripe; a failure is logged and changes nothing
    of ours (fulfilment never depends on it)."""
    from django.conf import settings
    from djstripe.models import Event

    from apps.billing.stripe_api import payments_enabled

    if not settings.BILLING_MIRROR_DJSTRIPE or not payments_enabled():
        return False
    mirrored = Event.objects.filter(id=event.stripe_id).first()
    if mirrored is None:  # an event we built ourselves (reconcile, refresh)
        return False
    try:
        with transaction.atomic():
            mirrored.invoke_webhook_handlers()
    except Exception as exc:  # network, API version or dj-stripe model differences
        logger.warning("dj-stripe could not sync %s (%s): %s", event.stripe_id, event.type, exc, exc_info=True)
        return False
    return True

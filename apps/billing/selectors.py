"""Reads behind the billing pages: the pricing catalogue, a workspace's billing state in words,
its payment history and invoices, and what a returning Checkout session has produced. No
Stripe calls here: everything comes from our tables (and dj-stripe's synced ones)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.billing.fulfilment import object_id
from apps.billing.models import (
    BillingAccount,
    CreditPack,
    Fulfilment,
    Plan,
    PlanSource,
    StripeEvent,
    SubscriptionStatus,
)
from apps.billing.money import money_display

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

INVOICES_SHOWN = 24


# ---------------------------------------------------------------------------- pricing


@dataclass(frozen=True)
class PlanOffer:
    """A plan as the pricing page shows it for one billing interval."""

    plan: Plan
    interval: str
    price: str
    per_month: str  # the monthly equivalent of a yearly price ("" for monthly)
    available: bool  # the plan is sold for this interval
    yearly_saving_percent: int

    @property
    def is_free(self) -> bool:
        return self.plan.is_free


def _saving_percent(plan: Plan) -> int:
    full_year = plan.price_monthly_cents * 12
    if not plan.price_yearly_cents or not full_year or plan.price_yearly_cents >= full_year:
        return 0
    return round(100 * (full_year - plan.price_yearly_cents) / full_year)


def plan_offers(*, interval: str) -> list[PlanOffer]:
    """The public plans, priced for `interval` (month or year)."""
    offers = []
    for plan in Plan.objects.public():
        yearly = interval == Plan.Interval.YEAR
        cents = plan.price_cents(interval)
        available = plan.is_free or (cents > 0 and (not yearly or plan.price_yearly_cents > 0))
        offers.append(
            PlanOffer(
                plan=plan,
                interval=interval,
                price=money_display(cents, plan.currency),
                per_month=money_display(cents // 12, plan.currency) if yearly and cents else "",
                available=available,
                yearly_saving_percent=_saving_percent(plan),
            )
        )
    return offers


@dataclass(frozen=True)
class PackOffer:
    pack: CreditPack
    price: str


def pack_offers() -> list[PackOffer]:
    return [
        PackOffer(pack=pack, price=money_display(pack.price_cents, pack.currency))
        for pack in CreditPack.objects.filter(is_active=True)
    ]


def had_trial(workspace: Workspace) -> bool:
    """Whether the workspace already had a trial (the site gives one per workspace by default)."""
    return Fulfilment.objects.filter(workspace=workspace, kind=Fulfilment.Kind.TRIAL).exists()


def account_of(workspace: Workspace) -> BillingAccount | None:
    """The workspace's billing account, if it has one (reading never creates it)."""
    return BillingAccount.objects.select_related("plan").filter(workspace=workspace).first()


# ---------------------------------------------------------------------------- billing page


# The badge of a workspace without a subscription. Not "Free": the plan's own name is shown beside
# it, and the default plan is usually called Free ("Free Free").
NOT_SUBSCRIBED = "No subscription"


@dataclass(frozen=True)
class BillingState:
    """Where the workspace stands, in words: a short label and what it means for the user."""

    code: str
    label: str
    explanation: str
    renews_at: datetime | None = None


def billing_state(account: BillingAccount | None, plan: Plan | None) -> BillingState:
    now = timezone.now()
    plan_name = plan.name if plan is not None else "the default plan"
    on_plan = f"the {plan.name} plan" if plan is not None else "the default plan"
    if account is None:
        return BillingState(
            "free", NOT_SUBSCRIBED, f"This workspace is on {on_plan}. Choose a plan to get more credits."
        )
    if account.restricted:
        return BillingState(
            "restricted",
            "Restricted",
            "A payment is overdue and the grace period has ended, so paid features are blocked until the "
            "open invoice is paid. Your credits are kept. Update the payment method in the customer portal.",
        )
    status = account.subscription_status
    if account.has_subscription:
        end = account.current_period_end
        if status == SubscriptionStatus.PAST_DUE:
            until = f" before {day(account.grace_until)}" if account.grace_until else ""
            return BillingState(
                "past_due",
                "Past due",
                f"The last payment failed. Update the payment method{until} to keep the paid features; "
                "Stripe retries the charge automatically.",
            )
        if account.cancel_at_period_end:
            when = f" on {day(end)}" if end else " at the end of the period"
            return BillingState(
                "canceling",
                "Cancels at period end",
                f"The subscription was cancelled. {plan_name} stays until the period ends{when}; the workspace then "
                "moves to the free plan. You can resume it until then.",
            )
        if status == SubscriptionStatus.TRIALING:
            trial_end = account.trial_ends_at
            when = f" until {day(trial_end)}" if trial_end else ""
            return BillingState(
                "trialing",
                "Trial",
                f"Free trial of {plan_name}{when}. The first payment is taken when the trial ends.",
                renews_at=trial_end,
            )
        if status == SubscriptionStatus.ACTIVE:
            return BillingState("active", "Active", f"Renews automatically{_on(end)}.", renews_at=end)
        return BillingState(
            status or "incomplete",
            account.get_subscription_status_display(),
            "The subscription needs a payment before it starts. Complete it in the customer portal.",
        )
    if account.plan_id is not None and account.plan_source != PlanSource.STRIPE:
        expires = account.plan_expires_at
        if expires is not None and expires <= now:
            return BillingState("free", NOT_SUBSCRIBED, f"This workspace is on {on_plan}.")
        until = f" until {day(expires)}" if expires else ""
        return BillingState(
            "assigned", account.get_plan_source_display(), f"{plan_name} is given to this workspace{until}."
        )
    return BillingState("free", NOT_SUBSCRIBED, f"This workspace is on {on_plan}. Choose a plan to get more credits.")


def day(moment: datetime) -> str:
    """A date in the user's time zone, as the pages print dates."""
    return f"{timezone.localtime(moment):%Y-%m-%d}"


def _on(moment: datetime | None) -> str:
    return f" on {day(moment)}" if moment else ""


def payment_history(workspace: Workspace) -> QuerySet[Fulfilment]:
    """Every payment-related record of the workspace, newest first (the page paginates it)."""
    return Fulfilment.objects.for_workspace(workspace).order_by("-created_at", "-id")


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    created: datetime | None
    status: str
    amount: str
    hosted_invoice_url: str
    invoice_pdf: str


def stripe_invoices(account: BillingAccount | None, *, limit: int = INVOICES_SHOWN) -> list[InvoiceRow]:
    """The invoices dj-stripe has synced for the workspace's Stripe customer (newest first)."""
    if account is None or not account.stripe_customer_id:
        return []
    from djstripe.models import Invoice

    rows = []
    invoices = Invoice.objects.filter(customer__id=account.stripe_customer_id).order_by("-created")[:limit]
    for invoice in invoices:
        data: dict[str, Any] = invoice.stripe_data or {}
        currency = str(data.get("currency") or "")
        cents = data.get("amount_paid") if data.get("status") == "paid" else data.get("amount_due")
        if cents is None:
            cents = data.get("total") or 0
        rows.append(
            InvoiceRow(
                id=invoice.id,
                number=str(data.get("number") or invoice.id),
                created=invoice.created,
                status=str(data.get("status") or ""),
                amount=money_display(int(cents), currency) if currency else "",
                hosted_invoice_url=str(data.get("hosted_invoice_url") or ""),
                invoice_pdf=str(data.get("invoice_pdf") or ""),
            )
        )
    return rows


def change_options() -> list[Plan]:
    """Plans a subscribed workspace can switch to (paid public plans)."""
    return [plan for plan in Plan.objects.public() if not plan.is_free]


# ---------------------------------------------------------------------------- checkout return


@dataclass(frozen=True)
class CheckoutResult:
    """What a Checkout session has produced so far for the workspace."""

    done: bool
    mode: str = ""  # "payment" (a credit pack) or "subscription"; "" while unknown
    pack: Fulfilment | None = None
    trial: Fulfilment | None = None
    account: BillingAccount | None = None


def _completed_session(session_id: str) -> dict[str, Any] | None:
    """The session as `billing_checkout_reconcile` found it complete: it stores the session in an
    event whose id is derived from the session's."""
    event = StripeEvent.objects.filter(stripe_id=f"reconcile_{session_id}").only("payload").first()
    return event.object if event is not None else None


def checkout_result(*, workspace: Workspace, session_id: str) -> CheckoutResult:
    """Whether the session is fulfilled for this workspace: a pack's credits granted, or the
    subscription in place. Another workspace's session reads as not done (never as someone
    else's result)."""
    pack = (
        Fulfilment.objects.for_workspace(workspace)
        .filter(stripe_object_id=session_id, kind=Fulfilment.Kind.PACK)
        .first()
    )
    if pack is not None:
        return CheckoutResult(done=True, mode="payment", pack=pack)
    session = _completed_session(session_id)
    if session is None or str(session.get("client_reference_id") or "") != str(workspace.pk):
        return CheckoutResult(done=False)
    mode = str(session.get("mode") or "")
    if mode != "subscription":
        return CheckoutResult(done=False, mode=mode)
    subscription_id = object_id(session.get("subscription"))
    account = account_of(workspace)
    live = (
        account is not None
        and account.subscription_id == subscription_id
        and account.subscription_status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
    )
    if not live:
        return CheckoutResult(done=False, mode=mode, account=account)
    trial = (
        Fulfilment.objects.for_workspace(workspace)
        .filter(stripe_object_id=subscription_id, kind=Fulfilment.Kind.TRIAL)
        .first()
    )
    return CheckoutResult(done=True, mode=mode, trial=trial, account=account)

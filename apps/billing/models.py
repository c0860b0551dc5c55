"""Billing: what a workspace pays for (plans, credit packs, redemption codes) and the record of
every payment event turned into credits.

Money is integer minor units (cents) with an ISO currency; credits are ledger units (1/10,000).
Fulfilment is keyed by Stripe object ids in `Fulfilment` (unique `key`), so a webhook delivered
twice, out of order or reprocessed after a failure grants once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone

from apps.credits.amounts import format_credits
from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet


def format_money(cents: int, currency: str) -> str:
    from apps.billing.money import money_display

    return money_display(cents, currency)


class PlanQuerySet(models.QuerySet["Plan"]):
    def public(self) -> PlanQuerySet:
        return self.filter(is_public=True, is_active=True)


class Plan(models.Model):
    """A subscription tier. Its limits apply to every workspace on it; empty limits fall back to
    the site defaults (Settings in the admin)."""

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    code = models.SlugField(max_length=32, unique=True, help_text="Stable id, used by model plan lists.")
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    features = models.JSONField(default=list, blank=True, help_text="Bullet points shown on the pricing page.")
    price_monthly_cents = models.PositiveIntegerField(default=0, help_text="Price per month, in cents.")
    price_yearly_cents = models.PositiveIntegerField(default=0, help_text="Price per year, in cents (0: no yearly).")
    currency = models.CharField(max_length=3, default="usd")
    monthly_credit_units = models.BigIntegerField(
        default=0, help_text="Subscription credits granted each month (yearly plans too), units of 1/10,000."
    )
    trial_days = models.PositiveSmallIntegerField(default=0)
    trial_credit_units = models.BigIntegerField(default=0, help_text="Credits during the trial, units of 1/10,000.")
    trial_requires_card = models.BooleanField(default=True, help_text="Ask for a card at the start of the trial.")
    # Feature flags and limits (null: the site default).
    voice_cloning = models.BooleanField(default=False)
    api_access = models.BooleanField(default=True)
    max_workspaces = models.PositiveIntegerField(null=True, blank=True)
    max_members = models.PositiveIntegerField(null=True, blank=True)
    max_documents = models.PositiveIntegerField(null=True, blank=True, help_text="Documents per workspace.")
    storage_mb = models.PositiveIntegerField(null=True, blank=True, help_text="Stored media per workspace.")
    upload_max_mb = models.PositiveIntegerField(null=True, blank=True, help_text="Largest audio upload.")
    result_retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Generated files are deleted after this many days (empty: kept)."
    )
    rate_limits = models.JSONField(
        default=dict, blank=True, help_text='Overrides of the site rate limits, e.g. {"key_rpm": 120}.'
    )
    is_default = models.BooleanField(default=False, help_text="The plan of workspaces without a subscription.")
    is_public = models.BooleanField(default=True, help_text="Shown on the pricing page.")
    is_active = models.BooleanField(default=True, help_text="Can be subscribed to.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    stripe_product_id = models.CharField(max_length=64, blank=True)
    stripe_price_monthly_id = models.CharField(max_length=64, blank=True)
    stripe_price_yearly_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "price_monthly_cents", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="billing_one_default_plan"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.price_monthly_cents == 0 and self.price_yearly_cents == 0

    def price_cents(self, interval: str) -> int:
        return self.price_yearly_cents if interval == self.Interval.YEAR else self.price_monthly_cents

    def stripe_price_id(self, interval: str) -> str:
        return self.stripe_price_yearly_id if interval == self.Interval.YEAR else self.stripe_price_monthly_id

    @property
    def monthly_credits_display(self) -> str:
        return format_credits(self.monthly_credit_units)


class CreditPack(models.Model):
    """A one-time purchase of credits (never expire)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=80)
    credit_units = models.BigIntegerField(help_text="Credits bought, units of 1/10,000.")
    bonus_units = models.BigIntegerField(default=0, help_text="Extra credits given with the pack.")
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    stripe_product_id = models.CharField(max_length=64, blank=True)
    stripe_price_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "price_cents", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(credit_units__gt=0), name="billing_pack_credits_positive"),
            models.CheckConstraint(condition=Q(bonus_units__gte=0), name="billing_pack_bonus_nonnegative"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def total_units(self) -> int:
        return self.credit_units + self.bonus_units


class SubscriptionStatus(models.TextChoices):
    NONE = "", "No subscription"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Canceled"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    PAUSED = "paused", "Paused"


class PlanSource(models.TextChoices):
    DEFAULT = "default", "Default plan"
    STRIPE = "stripe", "Stripe subscription"
    STAFF = "staff", "Assigned by staff"
    CODE = "code", "Redemption code"
    TRIAL = "trial", "Trial without card"


class BillingAccount(WorkspaceOwnedModel):
    """The billing side of a workspace: its plan, Stripe customer and subscription state."""

    workspace = models.OneToOneField("workspaces.Workspace", on_delete=models.CASCADE, related_name="billing")
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    plan_source = models.CharField(max_length=16, choices=PlanSource.choices, default=PlanSource.DEFAULT)
    # A plan given for a while (staff, code, card-less trial): back to the default after this.
    plan_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    subscription_status = models.CharField(
        max_length=24, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE, blank=True
    )
    interval = models.CharField(max_length=8, choices=Plan.Interval.choices, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    # The start of the period whose subscription credits were granted last: an invoice for an
    # earlier period (delivered late) does not reset them.
    credits_period_start = models.DateTimeField(null=True, blank=True)
    # The Stripe event time of the last subscription state applied: older events change nothing.
    subscription_event_at = models.DateTimeField(null=True, blank=True)
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(null=True, blank=True)
    restricted = models.BooleanField(default=False, help_text="Paid features blocked after an unpaid grace period.")
    card_brand = models.CharField(max_length=24, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp = models.CharField(max_length=7, blank=True)
    card_updated_at = models.DateTimeField(null=True, blank=True)
    # Auto top-up: disarmed when a top-up is charged, re-armed when the balance rises above the
    # threshold again, so one crossing charges once.
    topup_armed = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"], condition=~Q(stripe_customer_id=""), name="billing_one_customer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workspace} ({self.plan or 'default plan'})"

    @property
    def has_subscription(self) -> bool:
        return bool(self.subscription_id) and self.subscription_status not in (
            SubscriptionStatus.CANCELED,
            SubscriptionStatus.INCOMPLETE_EXPIRED,
            SubscriptionStatus.NONE,
        )


class AutoTopup(WorkspaceOwnedModel):
    """A workspace's automatic top-up: when a change takes its available credits below
    `threshold_units`, its saved card buys `pack` (once per crossing, see `topup.py`). The
    threshold is pushed to the ledger as a watched level (`credits_watch_set`), which announces
    the crossing."""

    workspace = models.OneToOneField("workspaces.Workspace", on_delete=models.CASCADE, related_name="auto_topup")
    enabled = models.BooleanField(default=False)
    threshold_units = models.BigIntegerField(
        null=True, blank=True, help_text="Top up when available credits fall below this, units of 1/10,000."
    )
    pack = models.ForeignKey(CreditPack, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        verbose_name = "auto top-up"
        constraints = [
            models.CheckConstraint(
                condition=Q(enabled=False) | Q(threshold_units__gt=0, pack__isnull=False),
                name="billing_topup_complete_when_enabled",
            )
        ]

    def __str__(self) -> str:
        if not self.enabled:
            return f"Auto top-up off for {self.workspace}"
        return f"Auto top-up of {self.pack} below {format_credits(self.threshold_units or 0)} for {self.workspace}"


class StripeEvent(models.Model):
    """A verified Stripe webhook event waiting for, or done with, our fulfilment. dj-stripe keeps
    the raw request (`WebhookEventTrigger`) and the event; this row is our processing state.
    Failed rows are retried with backoff by a periodic task and can be reprocessed from the
    admin."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When Stripe created the event.")
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"

    @property
    def object(self) -> dict[str, Any]:
        return dict(self.payload.get("data", {}).get("object") or {})


class Fulfilment(WorkspaceOwnedModel):
    """One thing done for one Stripe object (a grant for an invoice, a clawback for a refund).
    The unique `key` makes every handler idempotent; the rows are also the payment history."""

    class Kind(models.TextChoices):
        PACK = "pack", "Credit pack"
        SUBSCRIPTION = "subscription", "Subscription credits"
        TRIAL = "trial", "Trial credits"
        TOPUP = "topup", "Auto top-up"
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"
        REDEMPTION = "redemption", "Redemption code"
        PAYMENT_FAILED = "payment_failed", "Payment failed"

    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    stripe_object_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    event = models.ForeignKey(StripeEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    credit_units = models.BigIntegerField(default=0, help_text="Credits granted (negative: clawed back).")
    shortfall_units = models.BigIntegerField(default=0, help_text="Credits that could not be clawed back (spent).")
    amount_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    description = models.CharField(max_length=255, blank=True)
    invoice_number = models.CharField(max_length=64, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    grant = models.ForeignKey("credits.CreditGrant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="billing_fulfilment_ws")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.stripe_object_id or self.key}"

    @property
    def amount_display(self) -> str:
        return format_money(self.amount_cents, self.currency) if self.currency else ""

    @property
    def credits_display(self) -> str:
        return format_credits(self.credit_units)


class RedemptionCode(models.Model):
    """A code that grants credits and/or a plan for some days. Redeemed once per workspace;
    `max_redemptions` workspaces in all."""

    code = models.CharField(max_length=40)
    batch = models.CharField(max_length=80, blank=True, db_index=True)
    credit_units = models.BigIntegerField(default=0)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    plan_days = models.PositiveIntegerField(default=0)
    max_redemptions = models.PositiveIntegerField(default=1)
    redeemed_count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(Upper("code"), name="billing_code_unique_ci"),
            models.CheckConstraint(
                condition=Q(redeemed_count__lte=models.F("max_redemptions")), name="billing_code_within_max"
            ),
            models.CheckConstraint(
                condition=Q(credit_units__gt=0) | Q(plan__isnull=False), name="billing_code_grants_something"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Redemption(WorkspaceOwnedModel):
    code = models.ForeignKey(RedemptionCode, on_delete=models.PROTECT, related_name="redemptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    grant = models.ForeignKey("credits.CreditGrant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["code", "workspace"], name="billing_redeem_once_per_workspace")]

    def __str__(self) -> str:
        return f"{self.code} → {self.workspace}"


class TopupAttempt(WorkspaceOwnedModel):
    """An automatic top-up charge (off-session PaymentIntent) for one threshold crossing."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    pack = models.ForeignKey(CreditPack, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=200, unique=True)
    payment_intent_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Top-up {self.pack} for {self.workspace} ({self.status})"

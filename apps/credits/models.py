"""The credits ledger.

Every change is an append-only `LedgerEntry`. Two projections are kept in the same transaction:
per account and per grant, `balance_units` (= sum of entry `amount_units`: credits owned) and
`held_units` (= sum of entry `held_units`: credits reserved for calls in flight). What a
workspace can spend is `balance - held`; constraints keep it, and every grant's, ≥ 0.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.credits.amounts import format_credits, to_credits
from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet


class Source(models.TextChoices):
    TRIAL = "trial", "Trial"
    SUBSCRIPTION = "subscription", "Subscription"
    BONUS = "bonus", "Bonus"
    PURCHASED = "purchased", "Purchased"


# Tie-break among grants expiring at the same moment (and the never-expiring ones, last).
SOURCE_ORDER: dict[str, int] = {Source.TRIAL: 0, Source.SUBSCRIPTION: 1, Source.BONUS: 2, Source.PURCHASED: 3}


class Service(models.TextChoices):
    TEXT = "text", "Text / chat"
    IMAGE = "image", "Image generation"
    SPEECH = "speech", "Speech synthesis"
    TRANSCRIPTION = "transcription", "Transcription"
    VOICE_CLONE = "voice_clone", "Voice cloning"
    EMBEDDINGS = "embeddings", "Embeddings"


class CreditAccount(WorkspaceOwnedModel):
    """One per workspace: the balance projection and the workspace's credit settings."""

    workspace = models.OneToOneField("workspaces.Workspace", on_delete=models.CASCADE, related_name="credit_account")
    balance_units = models.BigIntegerField(default=0)
    held_units = models.BigIntegerField(default=0)
    # Earliest expiry among grants with credits left: reads and reservations apply expiry
    # only when this moment has passed, so the hot path never scans grants for it.
    next_expiry_at = models.DateTimeField(null=True, blank=True)
    # Low-balance alerts: thresholds in units, highest first; `alert_level` is how many of
    # them the available balance is below and has been notified (re-armed when it rises).
    alert_thresholds = models.JSONField(default=list, blank=True)
    alert_level = models.PositiveSmallIntegerField(default=0)
    # Spending caps (units); null = no cap. Member caps apply to each member separately.
    daily_cap_units = models.BigIntegerField(null=True, blank=True)
    monthly_cap_units = models.BigIntegerField(null=True, blank=True)
    member_daily_cap_units = models.BigIntegerField(null=True, blank=True)
    member_monthly_cap_units = models.BigIntegerField(null=True, blank=True)
    # Levels higher apps asked to hear about ({name: units}, `credits_watch_set`): a change
    # that takes the available balance below one announces `balance_crossed_level`.
    watch_levels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held_units__gte=0), name="credits_account_held_nonnegative"),
            models.CheckConstraint(
                condition=Q(balance_units__gte=F("held_units")), name="credits_account_available_nonnegative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workspace} ({format_credits(self.available_units)} credits)"

    @property
    def available_units(self) -> int:
        return self.balance_units - self.held_units

    @property
    def available(self):
        return to_credits(self.available_units)

    @property
    def balance(self):
        return to_credits(self.balance_units)

    @property
    def held(self):
        return to_credits(self.held_units)


class GrantQuerySet(WorkspaceScopedQuerySet["CreditGrant"]):
    def active(self, now=None) -> GrantQuerySet:
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), balance_units__gt=0)


class CreditGrant(WorkspaceOwnedModel):
    """A bucket of credits from one source. Consumed soonest-expiring first."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="grants")
    source = models.CharField(max_length=16, choices=Source.choices)
    source_rank = models.PositiveSmallIntegerField(default=0, editable=False)
    amount_units = models.BigIntegerField(help_text="Credits granted (units of 1/10,000).")
    balance_units = models.BigIntegerField(default=0)
    held_units = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    reference = models.CharField(
        max_length=200, blank=True, help_text="Invoice, checkout or promotion that produced it."
    )
    reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = GrantQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["account_id", "expires_at", "source_rank", "id"]
        indexes = [models.Index(fields=["account", "expires_at", "source_rank", "id"], name="credits_grant_order")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_units__gt=0), name="credits_grant_amount_positive"),
            models.CheckConstraint(condition=Q(held_units__gte=0), name="credits_grant_held_nonnegative"),
            models.CheckConstraint(
                condition=Q(balance_units__gte=F("held_units")), name="credits_grant_available_nonnegative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {format_credits(self.amount_units)} → {self.workspace}"

    @property
    def available_units(self) -> int:
        return self.balance_units - self.held_units


class RateCardQuerySet(models.QuerySet["RateCard"]):
    def current(self) -> RateCardQuerySet:
        return self.filter(superseded_at__isnull=True)


class RateCard(models.Model):
    """Prices of one model for one service, in credits. Versioned: a change publishes a new
    row and supersedes the old one, so every charge keeps the exact rate it used."""

    service = models.CharField(max_length=16, choices=Service.choices)
    model = models.CharField(max_length=100, help_text="Model id as shown to users, e.g. gpt-4o-mini.")
    version = models.PositiveIntegerField(default=1)
    is_free = models.BooleanField(default=False, help_text="Allow zero prices for this model.")
    input_per_1k = models.DecimalField(
        "credits per 1K input tokens", max_digits=14, decimal_places=4, null=True, blank=True
    )
    output_per_1k = models.DecimalField(
        "credits per 1K output tokens", max_digits=14, decimal_places=4, null=True, blank=True
    )
    cached_input_per_1k = models.DecimalField(
        "credits per 1K cached input tokens", max_digits=14, decimal_places=4, null=True, blank=True
    )
    per_image = models.JSONField(
        default=dict,
        blank=True,
        help_text='Credits per image by "size:quality", e.g. {"1024x1024:standard": "4", "1024x1024:hd": "8"}; '
        '"*" is the fallback.',
    )
    per_1k_characters = models.DecimalField(
        "credits per 1K characters", max_digits=14, decimal_places=4, null=True, blank=True
    )
    per_minute = models.DecimalField(
        "credits per minute of audio", max_digits=14, decimal_places=4, null=True, blank=True
    )
    per_unit = models.DecimalField(
        "credits per item", max_digits=14, decimal_places=4, null=True, blank=True, help_text="e.g. per voice clone."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = RateCardQuerySet.as_manager()

    class Meta:
        ordering = ["service", "model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["service", "model", "version"], name="credits_ratecard_version_unique"),
            models.UniqueConstraint(
                fields=["service", "model"],
                condition=Q(superseded_at__isnull=True),
                name="credits_ratecard_one_current",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.get_service_display()}) v{self.version}"


class ReservationQuerySet(WorkspaceScopedQuerySet["Reservation"]):
    def held(self) -> ReservationQuerySet:
        return self.filter(status=Reservation.Status.HELD)


class Reservation(WorkspaceOwnedModel):
    """Credits held for one AI call: reserve → (call) → settle or release, exactly once."""

    class Status(models.TextChoices):
        HELD = "held", "Held"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="reservations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD, db_index=True)
    service = models.CharField(max_length=16, choices=Service.choices, blank=True)
    model = models.CharField(max_length=100, blank=True)
    rate_card = models.ForeignKey(RateCard, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount_units = models.BigIntegerField(help_text="Held.")
    # {grant_id: units} taken from each grant at reserve time, in consumption order.
    allocations = models.JSONField(default=dict)
    checkpoint_units = models.BigIntegerField(
        default=0, help_text="Cost delivered so far; what the sweeper settles if the caller died."
    )
    charged_units = models.BigIntegerField(default=0)
    shortfall_units = models.BigIntegerField(default=0, help_text="Actual cost the balance could not cover.")
    usage = models.JSONField(default=dict, blank=True, help_text="Tokens, images, seconds… as reported.")
    related_type = models.CharField(max_length=100, blank=True)
    related_id = models.CharField(max_length=64, blank=True)
    outcome_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ReservationQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="credits_res_ws_created"),
            models.Index(fields=["status", "created_at"], name="credits_res_status_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_units__gte=0), name="credits_res_amount_nonnegative"),
            models.CheckConstraint(condition=Q(charged_units__gte=0), name="credits_res_charged_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.status})"


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant"
    RESERVE = "reserve", "Reserve"
    SETTLE = "settle", "Settle"
    RELEASE = "release", "Release"
    EXPIRE = "expire", "Expire"
    REFUND = "refund", "Refund"
    CLAWBACK = "clawback", "Clawback"
    ADJUST = "adjust", "Adjust"


class LedgerEntry(WorkspaceOwnedModel):
    """Append-only. `amount_units` changes the balance, `held_units` the hold; the account and
    grant projections always equal the sums of their entries."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    grant = models.ForeignKey(CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="entries")
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    kind = models.CharField(max_length=10, choices=EntryKind.choices)
    amount_units = models.BigIntegerField(default=0)
    held_units = models.BigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=220, unique=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    related_type = models.CharField(max_length=100, blank=True)
    related_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "-created_at"], name="credits_entry_acct_created")]

    def __str__(self) -> str:
        return f"{self.kind} {format_credits(self.amount_units)} ({self.idempotency_key})"

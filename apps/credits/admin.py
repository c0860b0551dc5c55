"""The credits back office. Every write goes through a service, which writes its audit row
with the staff member as `acting_user`: staff grant credits with `credits_grant`, adjust a
balance with `credits_adjust`, end holds with `credits_release` and change prices with
`rate_card_publish`. Ledger entries, reservations and balances are read-only projections; lists
select their relations up front so a page costs the same queries at any size.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html

from apps.accounts.models import User
from apps.core.admin import (
    AddFormAdmin,
    ChoicesFilter,
    ReadOnlyAdmin,
    WorkspaceFilter,
    admin_url,
    staff_user,
    workspace_link,
)
from apps.credits.amounts import AmountError, format_credits, to_credits, to_units
from apps.credits.exceptions import CreditsError
from apps.credits.forms import MIN_CREDITS, CreditsField
from apps.credits.models import CreditAccount, CreditGrant, LedgerEntry, RateCard, Reservation, Source
from apps.credits.rates import NON_FIELD, PRICE_FIELDS, rate_card_errors, rate_card_publish
from apps.credits.services import credits_adjust, credits_grant, credits_release, staff_release_outcome
from apps.credits.settings_service import MAX_THRESHOLDS, credits_settings_update
from apps.workspaces.models import Workspace


def _signed(units: int) -> str:
    return ("+" if units > 0 else "") + format_credits(units)


def credits_column(field: str, description: str, *, ordering: Any = None, blank_zero: bool = False) -> Any:
    """A list column showing `field` (ledger units) as credits, sorted by the field itself
    (or `ordering`); `blank_zero` leaves it empty for nothing."""

    @admin.display(description=description, ordering=ordering if ordering is not None else field)
    def column(model_admin: admin.ModelAdmin[Any], obj: Any) -> str:
        units = getattr(obj, field)
        return "" if blank_zero and not units else format_credits(units)

    return column


# ---------------------------------------------------------------------------- accounts


class CreditAccountForm(forms.ModelForm):
    """The settings a workspace's account carries. Balances are not here: they change only
    through the ledger (grants, adjustments, charges)."""

    daily_cap = CreditsField(required=False, min_value=MIN_CREDITS, help_text="Credits per day; empty for no cap.")
    monthly_cap = CreditsField(required=False, min_value=MIN_CREDITS, help_text="Credits per calendar month.")
    member_daily_cap = CreditsField(required=False, min_value=MIN_CREDITS, help_text="Per member, per day.")
    member_monthly_cap = CreditsField(required=False, min_value=MIN_CREDITS, help_text="Per member, per month.")
    thresholds = forms.CharField(
        label="Low-balance alerts",
        required=False,
        help_text="Comma-separated credit levels; an email goes out once each time the balance falls below one.",
    )

    UNIT_FIELDS = {
        "daily_cap": "daily_cap_units",
        "monthly_cap": "monthly_cap_units",
        "member_daily_cap": "member_daily_cap_units",
        "member_monthly_cap": "member_monthly_cap_units",
    }

    class Meta:
        model = CreditAccount
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account = self.instance
        for field, attr in self.UNIT_FIELDS.items():
            units = getattr(account, attr)
            self.initial[field] = to_credits(units) if units is not None else None
        self.initial["thresholds"] = ", ".join(format_credits(t).replace(",", "") for t in account.alert_thresholds)

    def clean_thresholds(self) -> list[int]:
        values: set[int] = set()
        for part in self.cleaned_data["thresholds"].split(","):
            part = part.strip().replace("_", "")
            if not part:
                continue
            try:
                units = to_units(part)
            except AmountError as exc:
                raise forms.ValidationError(f"{part!r} is not an amount of credits.") from exc
            if units <= 0:
                raise forms.ValidationError("Alert levels must be greater than zero.")
            values.add(units)
        if len(values) > MAX_THRESHOLDS:
            raise forms.ValidationError(f"Give at most {MAX_THRESHOLDS} alert levels.")
        return sorted(values, reverse=True)

    def settings(self) -> dict[str, Any]:
        data = self.cleaned_data
        values: dict[str, Any] = {
            attr: to_units(data[field]) if data.get(field) is not None else None
            for field, attr in self.UNIT_FIELDS.items()
        }
        values["alert_thresholds"] = data["thresholds"]
        return values


def _account_configure(*, account: CreditAccount, acting_user: User, values: dict[str, Any]) -> list[str]:
    """Store an account's settings for staff through the same service as the workspace's own
    settings page (never `account.save()`, which would write back the balance the form loaded).
    Returns the names of the fields that changed."""
    before = {name: getattr(account, name) for name in values}
    locked = credits_settings_update(account=account, acting_user=acting_user, as_staff=True, **values)
    return sorted(name for name in values if getattr(locked, name) != before[name])


class AdjustForm(forms.Form):
    amount = CreditsField(
        help_text="Credits to add (e.g. 25) or remove (e.g. -10.5). Removal takes available credits only."
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}), strip=True)
    expires_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Optional expiry of added credits."
    )
    # Generated when the form is shown: submitting it twice applies the adjustment once.
    key = forms.CharField(widget=forms.HiddenInput, max_length=150)

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter an amount other than zero.")
        return amount

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        expires_at = data.get("expires_at")
        if expires_at is not None:
            if data.get("amount") is not None and data["amount"] < 0:
                self.add_error("expires_at", "Only added credits can expire.")
            elif expires_at <= timezone.now():
                self.add_error("expires_at", "The expiry must be in the future.")
        return data


def _cap(units: int | None) -> str:
    return "none" if units is None else format_credits(units)


def _cap_column(field: str, description: str) -> Callable[[Any, CreditAccount], str]:
    """An admin column showing one of the account's spending caps."""

    @admin.display(description=description)
    def column(admin_: Any, obj: CreditAccount) -> str:
        return _cap(getattr(obj, field))

    return column


class LowBalanceFilter(ChoicesFilter):
    title = "balance"
    parameter_name = "low"
    conditions = {
        "yes": ("Below an alert level", lambda: Q(alert_level__gt=0)),
        "no": ("Above every alert level", lambda: Q(alert_level=0)),
    }


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    form = CreditAccountForm
    list_display = [
        "workspace",
        "available_display",
        "held_display",
        "balance_display",
        "next_expiry_at",
        "caps_display",
        "updated_at",
    ]
    list_filter = [LowBalanceFilter, "workspace__is_personal"]
    search_fields = ["workspace__name", "workspace__slug"]
    list_select_related = ["workspace"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False
    actions = ["adjust_balance"]
    readonly_fields = [
        "workspace",
        "available_display",
        "held_display",
        "balance_display",
        "next_expiry_at",
        "alert_level",
        "watch_levels_display",
        "history",
        "created_at",
        "updated_at",
    ]
    fieldsets = (
        (
            "Balance (from the ledger; change it with “Adjust balance”)",
            {
                "fields": (
                    "workspace",
                    "available_display",
                    "held_display",
                    "balance_display",
                    "next_expiry_at",
                    "history",
                )
            },
        ),
        ("Spending caps", {"fields": ("daily_cap", "monthly_cap", "member_daily_cap", "member_monthly_cap")}),
        ("Low-balance alerts", {"fields": ("thresholds", "alert_level")}),
        ("Levels watched by other apps", {"fields": ("watch_levels_display",)}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    # Staff who may only view see the stored settings through these instead of the form fields.
    view_only_fields = {
        "daily_cap": "daily_cap_display",
        "monthly_cap": "monthly_cap_display",
        "member_daily_cap": "member_daily_cap_display",
        "member_monthly_cap": "member_monthly_cap_display",
        "thresholds": "thresholds_display",
    }

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every workspace gets its account when it is created

    def _view_only(self, request: HttpRequest, obj: CreditAccount | None) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: CreditAccount | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if not self._view_only(request, obj):
            return fieldsets
        swap: dict[Any, Any] = self.view_only_fields
        return [
            (name, {**options, "fields": tuple(swap.get(f, f) for f in options["fields"])})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: CreditAccount | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + list(self.view_only_fields.values()) if self._view_only(request, obj) else fields

    daily_cap_display = _cap_column("daily_cap_units", "Daily cap")
    monthly_cap_display = _cap_column("monthly_cap_units", "Monthly cap")
    member_daily_cap_display = _cap_column("member_daily_cap_units", "Member daily cap")
    member_monthly_cap_display = _cap_column("member_monthly_cap_units", "Member monthly cap")

    @admin.display(description="Low-balance alerts")
    def thresholds_display(self, obj: CreditAccount) -> str:
        return ", ".join(format_credits(t) for t in obj.alert_thresholds) or "none"

    @admin.display(description="Watched levels")
    def watch_levels_display(self, obj: CreditAccount) -> str:
        """Set by the apps that watch them (billing: the auto top-up threshold)."""
        levels = sorted(obj.watch_levels.items())
        return ", ".join(f"{name}: {format_credits(units)}" for name, units in levels) or "none"

    def has_delete_permission(self, request: HttpRequest, obj: CreditAccount | None = None) -> bool:
        return False

    available_display = credits_column("available_units", "Available", ordering=F("balance_units") - F("held_units"))

    held_display = credits_column("held_units", "Held")

    balance_display = credits_column("balance_units", "Balance")

    @admin.display(description="Caps (day / month)")
    def caps_display(self, obj: CreditAccount) -> str:
        return f"{_cap(obj.daily_cap_units)} / {_cap(obj.monthly_cap_units)}"

    @admin.display(description="History")
    def history(self, obj: CreditAccount) -> str:
        return format_html(
            "{} · {} · {}",
            workspace_link(CreditGrant, obj.workspace_id, "Grants"),
            workspace_link(LedgerEntry, obj.workspace_id, "Ledger entries"),
            workspace_link(Reservation, obj.workspace_id, "Reservations"),
        )

    def save_model(self, request: HttpRequest, obj: CreditAccount, form: Any, change: bool) -> None:
        _account_configure(account=obj, acting_user=staff_user(request), values=form.settings())
        obj.refresh_from_db()

    def get_urls(self) -> list[URLPattern]:
        adjust = path(
            "<path:object_id>/adjust/",
            self.admin_site.admin_view(self.adjust_view),
            name="credits_creditaccount_adjust",
        )
        return [adjust, *super().get_urls()]

    @admin.action(description="Adjust balance of the selected account", permissions=["change"])
    def adjust_balance(self, request: HttpRequest, queryset: QuerySet[CreditAccount]) -> HttpResponse | None:
        accounts = list(queryset.values_list("pk", flat=True)[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one account to adjust.", messages.WARNING)
            return None
        return HttpResponseRedirect(admin_url(CreditAccount, "adjust", accounts[0]))

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        account = self.get_object(request, unquote(object_id))
        if account is None:
            self.message_user(request, f"No credit account with id {object_id!r}.", messages.WARNING)
            return HttpResponseRedirect(admin_url(CreditAccount, "changelist"))
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        if request.method == "POST":
            form = AdjustForm(request.POST)
            if form.is_valid():
                response = self._adjust(request, account, form.cleaned_data)
                if response is not None:
                    return response
        else:
            form = AdjustForm(initial={"key": f"admin-adjust:{uuid.uuid4().hex}"})
        return TemplateResponse(
            request,
            "admin/credits/adjust.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Adjust the balance of {account.workspace}",
                "opts": self.opts,
                "original": account,
                "account": account,
                "available": format_credits(account.available_units),
                "held": format_credits(account.held_units),
                "form": form,
                "media": self.media + form.media,
            },
        )

    def _adjust(self, request: HttpRequest, account: CreditAccount, data: dict[str, Any]) -> HttpResponse | None:
        try:
            applied = credits_adjust(
                workspace=account.workspace,
                amount=data["amount"],
                reason=data["reason"],
                acting_user=staff_user(request),
                idempotency_key=data["key"],
                expires_at=data.get("expires_at"),
            )
        except CreditsError as exc:
            # InsufficientCredits and the like: nothing was applied; the form stays filled in.
            self.message_user(request, exc.message, messages.ERROR)
            return None
        # A second submit of the same form is a replay: the first result, applied once.
        account.refresh_from_db()
        self.message_user(
            request,
            f"Adjusted {account.workspace} by {_signed(applied)} credits; "
            f"{format_credits(account.available_units)} available now.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(admin_url(CreditAccount, "change", account.pk))


# ---------------------------------------------------------------------------- grants


def _expires_within_a_week() -> Q:
    now = timezone.now()
    return Q(expires_at__gt=now, expires_at__lte=now + timedelta(days=7))


class ExpiryFilter(ChoicesFilter):
    title = "expiry"
    parameter_name = "expiry"
    conditions = {
        "never": ("Never expires", lambda: Q(expires_at__isnull=True)),
        "week": ("Expires within 7 days", _expires_within_a_week),
        "later": ("Expires later", lambda: Q(expires_at__gt=timezone.now() + timedelta(days=7))),
        "past": ("Past expiry", lambda: Q(expires_at__lte=timezone.now())),
    }


GRANT_ADD_FIELDS = ["workspace", "source", "amount", "expires_at", "reference", "reason", "idempotency_key"]


class GrantAddForm(forms.ModelForm):
    amount = CreditsField(min_value=MIN_CREDITS, help_text="Credits to grant.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text="Required.")

    class Meta:
        model = CreditGrant
        fields = GRANT_ADD_FIELDS
        widgets = {"idempotency_key": forms.HiddenInput}

    def clean_workspace(self) -> Workspace:
        workspace: Workspace = self.cleaned_data["workspace"]
        if workspace.deleted_at is not None:
            raise forms.ValidationError("This workspace is deleted.")
        return workspace

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if CreditGrant.objects.filter(idempotency_key=data.get("idempotency_key", "")).exists():
            raise forms.ValidationError("This grant was already created (the form was sent twice).")
        return data

    def validate_unique(self) -> None:
        """The key is checked in `clean` with a readable message; amounts by the service."""


@admin.register(CreditGrant)
class CreditGrantAdmin(AddFormAdmin):
    """Added through `credits_grant`; never edited: a grant's amount is history, corrections
    are adjustments."""

    list_display = [
        "id",
        "workspace",
        "source",
        "amount_display",
        "remaining_display",
        "held_display",
        "expires_at",
        "expired_at",
        "reference",
        "created_by",
        "created_at",
    ]
    list_filter = ["source", ExpiryFilter, WorkspaceFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["workspace__name", "workspace__slug", "reference", "reason", "idempotency_key"]
    list_select_related = ["workspace", "created_by"]
    ordering = ["-created_at", "-id"]
    raw_id_fields = ["workspace"]
    list_per_page = 50
    show_full_result_count = False
    add_form = GrantAddForm
    add_fields = GRANT_ADD_FIELDS
    view_fields = [
        "workspace",
        "source",
        "amount_display",
        "remaining_display",
        "held_display",
        "expires_at",
        "expired_at",
        "reference",
        "reason",
        "idempotency_key",
        "created_by",
        "created_at",
        "entries",
    ]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"idempotency_key": f"admin-grant:{uuid.uuid4().hex}", "source": Source.BONUS}

    def save_model(self, request: HttpRequest, obj: CreditGrant, form: Any, change: bool) -> None:
        data = form.cleaned_data
        grant = credits_grant(
            workspace=data["workspace"],
            amount=data["amount"],
            source=data["source"],
            idempotency_key=data["idempotency_key"],
            expires_at=data.get("expires_at"),
            reference=data.get("reference", ""),
            reason=data["reason"],
            acting_user=staff_user(request),
        )
        # The admin goes on to log and redirect to `obj`: make it the grant the service created.
        obj.pk = grant.pk
        obj.refresh_from_db()

    amount_display = credits_column("amount_units", "Amount")

    remaining_display = credits_column("balance_units", "Remaining")

    held_display = credits_column("held_units", "Held")

    @admin.display(description="Ledger")
    def entries(self, obj: CreditGrant) -> str:
        return format_html(
            '<a href="{}?grant__id__exact={}">Ledger entries of this grant</a>',
            admin_url(LedgerEntry, "changelist"),
            obj.pk,
        )


# ---------------------------------------------------------------------------- ledger


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "workspace",
        "kind",
        "amount_display",
        "held_display",
        "grant_id",
        "reservation_id",
        "actor",
        "idempotency_key",
    ]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter), WorkspaceFilter]
    search_fields = ["idempotency_key", "workspace__slug", "workspace__name", "related_id"]
    list_select_related = ["workspace", "actor"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount_units")
    def amount_display(self, obj: LedgerEntry) -> str:
        return _signed(obj.amount_units)

    @admin.display(description="Held", ordering="held_units")
    def held_display(self, obj: LedgerEntry) -> str:
        return _signed(obj.held_units)


# ---------------------------------------------------------------------------- reservations


class ReleaseForm(forms.Form):
    reason = forms.CharField(
        max_length=150,
        help_text="Why these holds end now (kept on each reservation and in the audit log).",
    )


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "workspace",
        "idempotency_key",
        "status",
        "service",
        "model",
        "held_display",
        "charged_display",
        "shortfall_display",
        "user",
        "finished_at",
    ]
    list_filter = ["status", "service", ("created_at", admin.DateFieldListFilter), WorkspaceFilter]
    search_fields = ["idempotency_key", "model", "workspace__slug", "workspace__name", "user__email", "related_id"]
    list_select_related = ["workspace", "user"]
    list_per_page = 100
    show_full_result_count = False
    actions = ["release_holds"]

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("credits.change_reservation")

    held_display = credits_column("amount_units", "Hold")

    charged_display = credits_column("charged_units", "Charged")

    shortfall_display = credits_column("shortfall_units", "Shortfall", blank_zero=True)

    @admin.action(description="Release selected holds", permissions=["release"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> HttpResponse | None:
        held = queryset.filter(status=Reservation.Status.HELD).select_related("workspace")
        if "apply" in request.POST:
            form = ReleaseForm(request.POST)
            if form.is_valid():
                released = self._release(request, list(held), form.cleaned_data["reason"])
                skipped = queryset.count() - released
                text = f"Released {released} hold(s)."
                if skipped:
                    text += f" {skipped} selected reservation(s) had already ended and were left as they are."
                self.message_user(request, text, messages.SUCCESS if released else messages.WARNING)
                return None
        else:
            form = ReleaseForm()
        return render(
            request,
            "admin/credits/release_holds.html",
            {
                **self.admin_site.each_context(request),
                "title": "Release holds",
                "opts": self.opts,
                "reservations": held[:500],
                "selected": queryset.values_list("pk", flat=True),
                "form": form,
            },
        )

    def _release(self, request: HttpRequest, reservations: list[Reservation], reason: str) -> int:
        staff = staff_user(request)
        outcome = staff_release_outcome(reason)
        released = 0
        for reservation in reservations:
            result = credits_release(reservation=reservation, reason=reason, acting_user=staff)
            # Ended by this call (not by a settle or sweep that got the lock first).
            if result.status == Reservation.Status.RELEASED and result.outcome_reason == outcome:
                released += 1
        return released


# ---------------------------------------------------------------------------- rate cards


class RateCardForm(forms.ModelForm):
    class Meta:
        model = RateCard
        fields = ["service", "model", "is_free", *PRICE_FIELDS, "per_image"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        card = self.instance
        if card.pk is not None and card.superseded_at is not None:
            raise forms.ValidationError("This version has been superseded; edit the current one.")
        service = data.get("service", card.service)
        model = (data.get("model") or card.model or "").strip()
        if card.pk is None and service and model:
            data["model"] = model
            if RateCard.objects.current().filter(service=service, model=model).exists():
                raise forms.ValidationError(
                    f"{model} already has prices for this service; open its current card to publish a new version."
                )
        probe = RateCard(
            service=service,
            model=model,
            is_free=data.get("is_free", False),
            per_image=data.get("per_image") or {},
            **{name: data.get(name) for name in PRICE_FIELDS},
        )
        for name, problems in rate_card_errors(probe).items():
            for problem in problems:
                self.add_error(None if name == NON_FIELD or name not in self.fields else name, problem)
        return data

    def validate_unique(self) -> None:
        """Versions are numbered by `rate_card_publish`, which also supersedes the current one."""

    def prices(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "is_free": data.get("is_free", False),
            "per_image": data.get("per_image") or {},
            **{name: data.get(name) for name in PRICE_FIELDS},
        }


class RateCardStatusFilter(ChoicesFilter):
    title = "status"
    parameter_name = "status"
    conditions = {
        "current": ("Current", lambda: Q(superseded_at__isnull=True)),
        "superseded": ("Superseded", lambda: Q(superseded_at__isnull=False)),
    }


@admin.register(RateCard)
class RateCardAdmin(admin.ModelAdmin):
    """Saving a card publishes a new version and supersedes the one edited: reservations keep
    the exact prices they were quoted with. Superseded versions are read-only."""

    form = RateCardForm
    list_display = [
        "model",
        "service",
        "version",
        "is_current",
        "is_free",
        "prices_display",
        "created_by",
        "created_at",
        "superseded_at",
    ]
    list_filter = [RateCardStatusFilter, "service", "is_free"]
    search_fields = ["model"]
    list_select_related = ["created_by"]
    list_per_page = 100
    show_full_result_count = False
    history_fields = ["version", "is_current", "created_by", "created_at", "superseded_at"]

    def has_change_permission(self, request: HttpRequest, obj: RateCard | None = None) -> bool:
        if obj is not None and obj.superseded_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: RateCard | None = None) -> bool:
        return False  # charges point at their card

    def get_fields(self, request: HttpRequest, obj: RateCard | None = None) -> Any:
        fields = ["service", "model", "is_free", *PRICE_FIELDS, "per_image"]
        return fields if obj is None else [*fields, *self.history_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: RateCard | None = None) -> list[str]:
        return [] if obj is None else ["service", "model", *self.history_fields]

    @admin.display(description="Current", boolean=True, ordering="superseded_at")
    def is_current(self, obj: RateCard) -> bool:
        return obj.superseded_at is None

    @admin.display(description="Prices")
    def prices_display(self, obj: RateCard) -> str:
        parts = []
        labels = {
            "input_per_1k": "in/1K",
            "cached_input_per_1k": "cached/1K",
            "output_per_1k": "out/1K",
            "per_1k_characters": "1K chars",
            "per_minute": "min",
            "per_unit": "item",
        }
        for name, label in labels.items():
            value = getattr(obj, name)
            if value is not None:
                parts.append(f"{label} {format_credits(to_units(value))}")
        parts += [f"{key} {value}" for key, value in (obj.per_image or {}).items()]
        return " · ".join(parts)

    def save_model(self, request: HttpRequest, obj: RateCard, form: Any, change: bool) -> None:
        if change and not form.has_changed():
            return  # nothing to publish
        card = rate_card_publish(
            service=obj.service if change else form.cleaned_data["service"],
            model=obj.model if change else form.cleaned_data["model"],
            acting_user=staff_user(request),
            **form.prices(),
        )
        # `obj` (the edited version) is never saved; the admin logs and redirects to the new one.
        obj.pk = card.pk
        obj.refresh_from_db()

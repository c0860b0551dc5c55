"""The billing back office. The catalogue (plans, credit packs) is edited here and pushed to
Stripe by `billing sync_stripe`; redemption codes are created in batches and exported as CSV.
A workspace's billing state, Stripe events, fulfilments and top-ups are read-only records:
staff change them only through actions that call the services (assign a plan, extend a trial,
grant credits, reprocess an event), each audited with the staff member as actor.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from apps.audit.services import audit_record
from apps.billing.codes import CodeError, billing_codes_create, billing_codes_deactivate
from apps.billing.fulfilment import event_process
from apps.billing.models import (
    AutoTopup,
    BillingAccount,
    CreditPack,
    Fulfilment,
    Plan,
    Redemption,
    RedemptionCode,
    StripeEvent,
    TopupAttempt,
)
from apps.billing.money import money_display
from apps.billing.services import (
    BillingError,
    billing_account_open,
    billing_pack_save,
    billing_plan_assign,
    billing_plan_save,
    billing_trial_extend,
)
from apps.billing.topup import topup_settings_update
from apps.core.admin import (
    AddFormAdmin,
    ChoicesFilter,
    ReadOnlyAdmin,
    WorkspaceFilter,
    admin_url,
    form_page,
    staff_user,
    workspace_link,
)
from apps.core.csv import csv_response
from apps.credits.admin import credits_column
from apps.credits.amounts import format_credits, to_credits, to_units
from apps.credits.forms import MIN_CREDITS, CreditsField, CreditsInUnitsForm
from apps.credits.models import Source
from apps.credits.services import credits_grant

# ---------------------------------------------------------------------------- catalogue


class PlanForm(CreditsInUnitsForm):
    """Credits in credits (stored in units); prices in cents as Stripe takes them."""

    monthly_credits = CreditsField(min_value=0, initial=0, help_text="Subscription credits granted each month.")
    trial_credits = CreditsField(min_value=0, initial=0, help_text="Credits during the trial (expire with it).")

    class Meta:
        model = Plan
        fields = [
            "name",
            "code",
            "description",
            "features",
            "sort_order",
            "is_default",
            "is_public",
            "is_active",
            "price_monthly_cents",
            "price_yearly_cents",
            "currency",
            "trial_days",
            "trial_requires_card",
            "voice_cloning",
            "api_access",
            "max_workspaces",
            "max_members",
            "storage_mb",
            "upload_max_mb",
            "result_retention_days",
            "rate_limits",
        ]

    credit_fields = (("monthly_credits", "monthly_credit_units"), ("trial_credits", "trial_credit_units"))


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanForm
    list_display = [
        "name",
        "code",
        "monthly_price",
        "yearly_price",
        "monthly_credits_display",
        "trial_days",
        "is_default",
        "is_public",
        "is_active",
        "voice_cloning",
        "api_access",
        "accounts_count",
        "synced",
        "sort_order",
    ]
    list_filter = ["is_active", "is_public", "voice_cloning", "api_access"]
    search_fields = ["code", "name"]
    list_select_related = False  # no relations shown
    list_per_page = 50
    ordering = ["sort_order", "price_monthly_cents", "id"]
    stripe_fields = ["stripe_product_id", "stripe_price_monthly_id", "stripe_price_yearly_id"]
    readonly_fields = [*stripe_fields, "restricted_models", "created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("name", "code", "description", "features", "sort_order")}),
        ("Availability", {"fields": ("is_default", "is_public", "is_active")}),
        ("Prices", {"fields": ("price_monthly_cents", "price_yearly_cents", "currency")}),
        ("Credits and trial", {"fields": ("monthly_credits", "trial_days", "trial_credits", "trial_requires_card")}),
        (
            "Features and limits (empty: the site default)",
            {
                "fields": (
                    "voice_cloning",
                    "api_access",
                    "max_workspaces",
                    "max_members",
                    "max_documents",
                    "storage_mb",
                    "upload_max_mb",
                    "result_retention_days",
                    "rate_limits",
                )
            },
        ),
        ("Models restricted to listed plans", {"fields": ("restricted_models",)}),
        ("Stripe (set by `manage.py billing sync_stripe`)", {"fields": tuple(stripe_fields)}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).annotate(accounts_count=Count("accounts"))

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        # Models name plans by code (`AIModel.plans`): renaming it would unlink them.
        return [*fields, "code"] if obj is not None else fields

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        return False  # workspaces and Stripe prices point at it; deactivate instead

    @admin.display(description="Workspaces", ordering="accounts_count")
    def accounts_count(self, obj: Plan) -> int:
        return int(getattr(obj, "accounts_count", 0))

    @admin.display(description="Monthly", ordering="price_monthly_cents")
    def monthly_price(self, obj: Plan) -> str:
        return money_display(obj.price_monthly_cents, obj.currency)

    @admin.display(description="Yearly", ordering="price_yearly_cents")
    def yearly_price(self, obj: Plan) -> str:
        return money_display(obj.price_yearly_cents, obj.currency) if obj.price_yearly_cents else "—"

    monthly_credits_display = credits_column("monthly_credit_units", "Credits / month")

    @admin.display(description="In Stripe", boolean=True)
    def synced(self, obj: Plan) -> bool | None:
        if obj.is_free:
            return None
        return bool(obj.stripe_product_id and obj.stripe_price_monthly_id)

    @admin.display(description="Models only for listed plans")
    def restricted_models(self, obj: Plan) -> str:
        """The models whose plan list names this plan (models listing no plan are open to all)."""
        from apps.generation.models import AIModel

        if obj.pk is None:
            return "—"
        models = [m for m in AIModel.objects.only("pk", "model_id", "plans") if obj.code in (m.plans or [])]
        if not models:
            return "None: this plan uses the models open to every plan."
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:generation_aimodel_change", args=[m.pk]), m.model_id) for m in models),
        )

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        billing_plan_save(plan=obj, changed=form.changed_data, acting_user=staff_user(request))


class CreditPackForm(CreditsInUnitsForm):
    credits = CreditsField(min_value=MIN_CREDITS, help_text="Credits bought.")
    bonus = CreditsField(min_value=0, initial=0, help_text="Extra credits given with the pack.")

    class Meta:
        model = CreditPack
        fields = ["name", "code", "price_cents", "currency", "is_active", "sort_order"]

    credit_fields = (("credits", "credit_units"), ("bonus", "bonus_units"))


@admin.register(CreditPack)
class CreditPackAdmin(admin.ModelAdmin):
    form = CreditPackForm
    list_display = ["name", "code", "price", "credits_display", "bonus_display", "is_active", "synced", "sort_order"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    list_select_related = False  # no relations shown
    list_per_page = 50
    readonly_fields = ["stripe_product_id", "stripe_price_id", "created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("name", "code", "credits", "bonus", "price_cents", "currency", "is_active", "sort_order")}),
        ("Stripe (set by `manage.py billing sync_stripe`)", {"fields": ("stripe_product_id", "stripe_price_id")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: CreditPack | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "code"] if obj is not None else fields

    def has_delete_permission(self, request: HttpRequest, obj: CreditPack | None = None) -> bool:
        return False  # top-ups and checkouts point at it; deactivate instead

    @admin.display(description="Price", ordering="price_cents")
    def price(self, obj: CreditPack) -> str:
        return money_display(obj.price_cents, obj.currency)

    credits_display = credits_column("credit_units", "Credits")

    bonus_display = credits_column("bonus_units", "Bonus", blank_zero=True)

    @admin.display(description="In Stripe", boolean=True)
    def synced(self, obj: CreditPack) -> bool:
        return bool(obj.stripe_price_id)

    def save_model(self, request: HttpRequest, obj: CreditPack, form: Any, change: bool) -> None:
        billing_pack_save(pack=obj, changed=form.changed_data, acting_user=staff_user(request))


# ---------------------------------------------------------------------------- redemption codes


class CodeBatchForm(forms.Form):
    batch = forms.CharField(
        max_length=80, help_text="A name for this batch (campaign, partner…): used to filter and export it."
    )
    count = forms.IntegerField(min_value=1, max_value=10_000, initial=10, help_text="How many codes to create.")
    credits = CreditsField(required=False, min_value=0, help_text="Bonus credits each redemption grants.")
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.all(), required=False, help_text="A plan each redemption gives for some days."
    )
    plan_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Plan days")
    max_redemptions = forms.IntegerField(
        min_value=1, initial=1, label="Max uses", help_text="Workspaces that can redeem each code (once each)."
    )
    expires_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Empty: the codes never expire."
    )
    code_prefix = forms.CharField(
        label="Prefix", required=False, max_length=16, help_text="Optional letters and digits in front of each code."
    )

    def clean_batch(self) -> str:
        batch: str = self.cleaned_data["batch"].strip()
        # One batch per name, so an export is exactly what was created (and a form sent twice
        # creates nothing more).
        if RedemptionCode.objects.filter(batch=batch).exists():
            raise forms.ValidationError("A batch with this name already exists.")
        return batch

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("plan") is not None and not data.get("plan_days"):
            self.add_error("plan_days", "Give the number of days the plan lasts.")
        if not data.get("credits") and data.get("plan") is None and not self.errors:
            raise forms.ValidationError("Codes must grant credits, a plan, or both.")
        return data


class BatchFilter(admin.SimpleListFilter):
    """The 100 most recent batches, in one grouped query whatever the number of codes."""

    title = "batch"
    parameter_name = "batch"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        batches = (
            RedemptionCode.objects.exclude(batch="")
            .values("batch")
            .annotate(latest=Max("created_at"))
            .order_by("-latest")
            .values_list("batch", flat=True)[:100]
        )
        return [(b, b) for b in batches]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(batch=value) if value else queryset


class ExpiredFilter(ChoicesFilter):
    title = "expiry"
    parameter_name = "expired"
    conditions = {
        "no": ("Not expired", lambda: ~Q(expires_at__lte=timezone.now())),
        "yes": ("Expired", lambda: Q(expires_at__lte=timezone.now())),
    }


CSV_COLUMNS = ["code", "batch", "credits", "plan", "plan_days", "max_uses", "used", "expires_at", "active"]


def _codes_csv(codes: QuerySet[RedemptionCode], filename: str) -> StreamingHttpResponse:
    rows = (
        (
            code.code,
            code.batch,
            format_credits(code.credit_units) if code.credit_units else "",
            code.plan.code if code.plan else "",
            code.plan_days or "",
            code.max_redemptions,
            code.redeemed_count,
            code.expires_at,
            "yes" if code.is_active else "no",
        )
        for code in codes.select_related("plan").order_by("id").iterator(chunk_size=1000)
    )
    return csv_response(filename=filename, header=CSV_COLUMNS, rows=rows)


def _safe_filename(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60] or "codes"


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(admin.ModelAdmin):
    """Codes are created in batches ("Add" opens the batch form) and never edited: a code is
    stopped with "Deactivate"."""

    list_display = [
        "code",
        "batch",
        "credits_display",
        "plan",
        "plan_days",
        "uses",
        "expires_at",
        "is_active",
        "created_by",
        "created_at",
    ]
    list_filter = [BatchFilter, "is_active", ExpiredFilter, "plan"]
    search_fields = ["code", "=batch"]
    list_select_related = ["plan", "created_by"]
    list_per_page = 100
    show_full_result_count = False
    actions = ["export_csv", "deactivate"]

    def has_change_permission(self, request: HttpRequest, obj: RedemptionCode | None = None) -> bool:
        return False  # what a code grants is fixed once people may hold it

    def has_delete_permission(self, request: HttpRequest, obj: RedemptionCode | None = None) -> bool:
        return False  # redemptions point at it; deactivate instead

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_redemptioncode")

    credits_display = credits_column("credit_units", "Credits", blank_zero=True)

    @admin.display(description="Used", ordering="redeemed_count")
    def uses(self, obj: RedemptionCode) -> str:
        return f"{obj.redeemed_count} / {obj.max_redemptions}"

    def get_urls(self) -> list[URLPattern]:
        export = path("export/", self.admin_site.admin_view(self.export_view), name="billing_redemptioncode_export")
        return [export, *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The batch form: codes are only ever created through `billing_codes_create`."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = CodeBatchForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    codes = billing_codes_create(
                        count=data["count"],
                        credits=data.get("credits") or None,
                        plan=data.get("plan"),
                        plan_days=data.get("plan_days") or 0,
                        max_redemptions=data["max_redemptions"],
                        expires_at=data.get("expires_at"),
                        batch=data["batch"],
                        acting_user=staff_user(request),
                        prefix=data.get("code_prefix") or "",
                    )
                except CodeError as exc:
                    form.add_error(None, exc.message)
                else:
                    batch = data["batch"]
                    export = f"{admin_url(RedemptionCode, 'export')}?{urlencode({'batch': batch})}"
                    self.message_user(
                        request,
                        format_html(
                            'Created {} code(s) in the batch “{}”. <a href="{}">Download them as CSV</a>.',
                            len(codes),
                            batch,
                            export,
                        ),
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        f"{admin_url(RedemptionCode, 'changelist')}?{urlencode({'batch': batch})}"
                    )
        else:
            form = CodeBatchForm()
        return form_page(
            self,
            request,
            title="Create a batch of redemption codes",
            form=form,
            submit="Create codes",
            intro=[
                "Each code grants its credits and/or its plan for the given days to the workspace that "
                "redeems it, once per workspace, up to the maximum number of uses.",
                "A plan is not applied to a workspace paying for a subscription (its credits still are).",
            ],
        )

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = request.GET.get("batch", "")
        codes = RedemptionCode.objects.filter(batch=batch)
        count = codes.count()
        if not batch or not count:
            self.message_user(request, f"No codes in the batch {batch!r}.", messages.WARNING)
            return HttpResponseRedirect(admin_url(RedemptionCode, "changelist"))
        audit_record(
            actor=staff_user(request), action="billing.codes_export", metadata={"batch": batch, "count": count}
        )
        return _codes_csv(codes, f"codes-{_safe_filename(batch)}.csv")

    @admin.action(description="Export selected codes as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[RedemptionCode]) -> StreamingHttpResponse:
        batches = sorted(set(queryset.values_list("batch", flat=True)))
        audit_record(
            actor=staff_user(request),
            action="billing.codes_export",
            metadata={"batches": batches[:20], "count": queryset.count()},
        )
        name = batches[0] if len(batches) == 1 and batches[0] else "selection"
        return _codes_csv(queryset, f"codes-{_safe_filename(name)}.csv")

    @admin.action(description="Deactivate selected codes", permissions=["deactivate"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[RedemptionCode]) -> None:
        done = billing_codes_deactivate(
            code_ids=list(queryset.values_list("pk", flat=True)), acting_user=staff_user(request)
        )
        self.message_user(request, f"Deactivated {done} code(s).", messages.SUCCESS if done else messages.WARNING)


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "code", "workspace", "user", "credits_display", "plan_display", "grant_id"]
    list_filter = [WorkspaceFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["code__code", "=code__batch", "workspace__slug", "workspace__name", "user__email"]
    list_select_related = ["code", "code__plan", "workspace", "user"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Credits")
    def credits_display(self, obj: Redemption) -> str:
        return format_credits(obj.code.credit_units) if obj.code.credit_units else ""

    @admin.display(description="Plan")
    def plan_display(self, obj: Redemption) -> str:
        return f"{obj.code.plan} ({obj.code.plan_days} days)" if obj.code.plan else ""


# ---------------------------------------------------------------------------- accounts


class AssignPlanForm(forms.Form):
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.all(), required=False, empty_label="The default plan", help_text="The plan to give."
    )
    days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Empty: until changed. Else back to the default after."
    )
    reason = forms.CharField(max_length=500, help_text="Kept in the audit log.")


class ExtendTrialForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=365, help_text="Days added to the trial (or time-limited plan).")


class GrantCreditsForm(forms.Form):
    amount = CreditsField(min_value=MIN_CREDITS, help_text="Bonus credits for each selected workspace.")
    reason = forms.CharField(max_length=500, help_text="Kept in the ledger and the audit log.")
    expires_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Optional: the credits expire then."
    )
    # Made when the form is shown: sending it twice grants once.
    key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at


class AccountAddForm(forms.ModelForm):
    class Meta:
        model = BillingAccount
        fields = ["workspace"]

    def validate_unique(self) -> None:
        """An existing account is returned as is by `billing_account`."""


def _stripe_link(kind: str, object_id: str) -> str:
    if not object_id:
        return "—"
    mode = "" if settings.STRIPE_LIVE_MODE else "test/"
    return format_html('<a href="https://dashboard.stripe.com/{}{}/{}">{}</a>', mode, kind, object_id, object_id)


@admin.register(BillingAccount)
class BillingAccountAdmin(AddFormAdmin):
    """What a workspace is on and what it paid. Read-only: its state follows Stripe, and staff
    change the plan through the audited actions; "Add" opens the account of a workspace that
    has none yet."""

    list_display = [
        "workspace",
        "plan",
        "plan_source",
        "plan_expires_at",
        "subscription_status",
        "interval",
        "current_period_end",
        "stripe_customer_id",
        "restricted",
    ]
    list_filter = ["plan_source", "subscription_status", "restricted", "plan", "cancel_at_period_end"]
    search_fields = ["workspace__slug", "workspace__name", "=stripe_customer_id", "=subscription_id"]
    list_select_related = ["workspace", "plan"]
    raw_id_fields = ["workspace"]
    list_per_page = 50
    show_full_result_count = False
    actions = ["assign_plan", "extend_trial", "grant_credits"]
    add_form = AccountAddForm
    add_fields = ["workspace"]
    view_fields = [
        "workspace",
        "plan",
        "plan_source",
        "plan_expires_at",
        "restricted",
        "customer_link",
        "subscription_link",
        "subscription_status",
        "interval",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "trial_ends_at",
        "credits_period_start",
        "payment_failed_at",
        "grace_until",
        "card",
        "topup_armed",
        "history",
        "payments",
        "created_at",
        "updated_at",
    ]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_billingaccount")

    def save_model(self, request: HttpRequest, obj: BillingAccount, form: Any, change: bool) -> None:
        account = billing_account_open(workspace=form.cleaned_data["workspace"], acting_user=staff_user(request))
        obj.pk = account.pk
        obj.refresh_from_db()

    @admin.display(description="Stripe customer")
    def customer_link(self, obj: BillingAccount) -> str:
        return _stripe_link("customers", obj.stripe_customer_id)

    @admin.display(description="Subscription")
    def subscription_link(self, obj: BillingAccount) -> str:
        return _stripe_link("subscriptions", obj.subscription_id)

    @admin.display(description="Card")
    def card(self, obj: BillingAccount) -> str:
        return f"{obj.card_brand} ···· {obj.card_last4} ({obj.card_exp})" if obj.card_last4 else "—"

    @admin.display(description="Records")
    def history(self, obj: BillingAccount) -> str:
        return format_html(
            "{} · {} · {} · {} · {}",
            workspace_link(Fulfilment, obj.workspace_id, "Payments and fulfilments"),
            workspace_link(StripeEvent, obj.workspace_id, "Stripe events"),
            workspace_link(Redemption, obj.workspace_id, "Redeemed codes"),
            workspace_link(TopupAttempt, obj.workspace_id, "Top-ups"),
            format_html(
                '<a href="{}?workspace={}">Credit grants</a>',
                reverse("admin:credits_creditgrant_changelist"),
                obj.workspace_id,
            ),
        )

    @admin.display(description="Latest payments and fulfilments")
    def payments(self, obj: BillingAccount) -> str:
        rows = Fulfilment.objects.filter(workspace_id=obj.workspace_id).order_by("-created_at", "-id")[:20]
        if not rows:
            return "None yet."
        body = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    admin_url(Fulfilment, "change", f.pk),
                    timezone.localtime(f.created_at).strftime("%Y-%m-%d %H:%M"),
                    f.get_kind_display(),
                    f.description,
                    f.amount_display,
                    f.credits_display if f.credit_units else "",
                )
                for f in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>Date</th><th>Kind</th><th>What</th><th>Amount</th><th>Credits</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )

    def _accounts(self, queryset: QuerySet[BillingAccount]) -> list[BillingAccount]:
        return list(queryset.select_related("workspace", "plan").order_by("pk"))

    @admin.action(description="Assign plan to the selected workspaces", permissions=["manage"])
    def assign_plan(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> HttpResponse | None:
        accounts = self._accounts(queryset)
        form = AssignPlanForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            plan, days, reason = form.cleaned_data["plan"], form.cleaned_data["days"], form.cleaned_data["reason"]
            for account in accounts:
                billing_plan_assign(
                    workspace=account.workspace, plan=plan, acting_user=staff_user(request), days=days, reason=reason
                )
            until = f" for {days} day(s)" if days else ""
            self.message_user(
                request, f"Put {len(accounts)} workspace(s) on {plan or 'the default plan'}{until}.", messages.SUCCESS
            )
            return None
        return form_page(
            self,
            request,
            title="Assign a plan",
            form=form,
            submit="Assign plan",
            intro=[
                "The workspaces below are put on the chosen plan now, with its credits for this month (once a "
                "month per plan). One paying for a Stripe subscription returns to its subscribed plan at the "
                "subscription's next change or renewal."
            ],
            objects=[
                f"{a.workspace} (now: {a.plan or 'default plan'}, {a.get_plan_source_display()})" for a in accounts
            ],
            selected=[a.pk for a in accounts],
            action="assign_plan",
        )

    @admin.action(description="Extend the trial of the selected workspaces", permissions=["manage"])
    def extend_trial(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> HttpResponse | None:
        accounts = self._accounts(queryset)
        form = ExtendTrialForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            from stripe import StripeError

            from apps.billing.stripe_api import PaymentsNotConfigured

            days = form.cleaned_data["days"]
            extended, refused = 0, []
            for account in accounts:
                try:
                    billing_trial_extend(workspace=account.workspace, acting_user=staff_user(request), days=days)
                except (BillingError, PaymentsNotConfigured, StripeError) as exc:
                    refused.append(f"{account.workspace}: {exc}")
                else:
                    extended += 1
            if extended:
                self.message_user(request, f"Extended {extended} trial(s) by {days} day(s).", messages.SUCCESS)
            for line in refused:
                self.message_user(request, line, messages.WARNING)
            return None
        return form_page(
            self,
            request,
            title="Extend a trial",
            form=form,
            submit="Extend",
            intro=[
                "A trialing Stripe subscription gets a later trial end at Stripe; a time-limited plan "
                "(staff, code or card-less trial) runs that many days longer."
            ],
            objects=[str(a.workspace) for a in accounts],
            selected=[a.pk for a in accounts],
            action="extend_trial",
        )

    @admin.action(description="Grant credits to the selected workspaces", permissions=["manage"])
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> HttpResponse | None:
        accounts = self._accounts(queryset)
        if "apply" in request.POST:
            form = GrantCreditsForm(request.POST)
        else:
            form = GrantCreditsForm(initial={"key": uuid.uuid4().hex})
        if form.is_valid():
            data = form.cleaned_data
            for account in accounts:
                credits_grant(
                    workspace=account.workspace,
                    amount=data["amount"],
                    source=Source.BONUS,
                    idempotency_key=f"admin-grant:{data['key']}:{account.workspace_id}",
                    expires_at=data.get("expires_at"),
                    reference="admin",
                    reason=data["reason"],
                    acting_user=staff_user(request),
                )
            self.message_user(
                request,
                f"Granted {format_credits(to_units(data['amount']))} credits to {len(accounts)} workspace(s).",
                messages.SUCCESS,
            )
            return None
        return form_page(
            self,
            request,
            title="Grant credits",
            form=form,
            submit="Grant credits",
            intro=["Each workspace below gets a bonus grant of this amount."],
            objects=[str(a.workspace) for a in accounts],
            selected=[a.pk for a in accounts],
            action="grant_credits",
        )


# ---------------------------------------------------------------------------- auto top-up


class AutoTopupAdminForm(forms.ModelForm):
    """The workspace's automatic top-up, as owners set it on its billing pages; stored through
    the same service (which also pushes the threshold to the ledger)."""

    threshold = CreditsField(
        required=False, min_value=MIN_CREDITS, help_text="Top up when available credits fall below this."
    )

    class Meta:
        model = AutoTopup
        fields = ["workspace", "enabled", "pack"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        units = self.instance.threshold_units
        self.initial["threshold"] = to_credits(units) if units is not None else None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        pack = data.get("pack")
        if data.get("enabled"):
            if data.get("threshold") is None:
                self.add_error("threshold", "Set the level that triggers an automatic top-up.")
            if pack is None:
                self.add_error("pack", "Choose the credit pack to buy.")
        if pack is not None and not pack.is_active and pack.pk != self.instance.pack_id:
            self.add_error("pack", "This credit pack is not for sale.")
        return data

    def validate_unique(self) -> None:
        """An existing row is updated by `topup_settings_update`, never duplicated."""

    def settings(self) -> dict[str, Any]:
        data = self.cleaned_data
        threshold = data.get("threshold")
        return {
            "enabled": bool(data.get("enabled")),
            "threshold_units": to_units(threshold) if threshold is not None else None,
            "pack": data.get("pack"),
        }


@admin.register(AutoTopup)
class AutoTopupAdmin(admin.ModelAdmin):
    form = AutoTopupAdminForm
    list_display = ["workspace", "enabled", "threshold_display", "pack", "updated_at"]
    list_filter = ["enabled", WorkspaceFilter]
    search_fields = ["workspace__name", "workspace__slug"]
    list_select_related = ["workspace", "pack"]
    raw_id_fields = ["workspace"]
    list_per_page = 50
    show_full_result_count = False

    def get_fields(self, request: HttpRequest, obj: AutoTopup | None = None) -> Any:
        fields = ["workspace", "enabled", "threshold", "pack"]
        return fields if obj is None else [*fields, "created_at", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: AutoTopup | None = None) -> Any:
        return [] if obj is None else ["workspace", "created_at", "updated_at"]

    def has_delete_permission(self, request: HttpRequest, obj: AutoTopup | None = None) -> bool:
        return False  # turned off, not deleted: the audit rows point at it

    @admin.display(description="Threshold", ordering="threshold_units")
    def threshold_display(self, obj: AutoTopup) -> str:
        return format_credits(obj.threshold_units) if obj.threshold_units is not None else "—"

    def save_model(self, request: HttpRequest, obj: AutoTopup, form: Any, change: bool) -> None:
        # Through the service (audited, threshold pushed to the ledger); `obj` itself is not saved.
        topup = topup_settings_update(
            workspace=obj.workspace, acting_user=staff_user(request), as_staff=True, **form.settings()
        )
        obj.pk = topup.pk
        obj.refresh_from_db()


# ---------------------------------------------------------------------------- Stripe records


def _pretty_json(value: Any) -> SafeString:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "stripe_id",
        "type",
        "status",
        "attempts",
        "workspace",
        "created",
        "processed_at",
        "next_attempt_at",
        "error_summary",
    ]
    list_filter = ["status", "type", "livemode", WorkspaceFilter]
    search_fields = ["=stripe_id"]
    list_select_related = ["workspace"]
    list_per_page = 100
    show_full_result_count = False
    actions = ["reprocess"]
    exclude = ["payload"]
    readonly_fields = ["payload_display"]

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_stripeevent")

    @admin.display(description="Error")
    def error_summary(self, obj: StripeEvent) -> str:
        return obj.last_error[:120]

    @admin.display(description="Payload")
    def payload_display(self, obj: StripeEvent) -> str:
        return _pretty_json(obj.payload)

    @admin.action(description="Reprocess selected events", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        outcomes: dict[str, int] = {status: 0 for status in StripeEvent.Status.values}
        errors = []
        for pk in queryset.order_by("created", "id").values_list("pk", flat=True):
            # Forced: a processed event runs its handler again, which grants nothing twice.
            event = event_process(event_id=pk, force=True, acting_user=staff_user(request))
            outcomes[event.status] += 1
            if event.status == StripeEvent.Status.FAILED:
                errors.append(f"{event.stripe_id}: {event.last_error[:200]}")
        total = sum(outcomes.values())
        self.message_user(
            request,
            f"Reprocessed {total} event(s): {outcomes['processed']} processed, {outcomes['ignored']} ignored, "
            f"{outcomes['failed']} failed.",
            messages.WARNING if errors else messages.SUCCESS,
        )
        for line in errors:
            self.message_user(request, line, messages.ERROR)


@admin.register(Fulfilment)
class FulfilmentAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "workspace",
        "kind",
        "description",
        "amount_display",
        "credits_display",
        "stripe_object_id",
        "invoice",
        "event_id",
    ]
    list_filter = ["kind", WorkspaceFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=key", "=stripe_object_id", "=payment_intent_id", "=invoice_number"]
    list_select_related = ["workspace"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount_cents")
    def amount_display(self, obj: Fulfilment) -> str:
        return obj.amount_display

    @admin.display(description="Credits", ordering="credit_units")
    def credits_display(self, obj: Fulfilment) -> str:
        return obj.credits_display if obj.credit_units else ""

    @admin.display(description="Invoice")
    def invoice(self, obj: Fulfilment) -> str:
        if not obj.hosted_invoice_url:
            return obj.invoice_number
        return format_html('<a href="{}">{}</a>', obj.hosted_invoice_url, obj.invoice_number or "invoice")


@admin.register(TopupAttempt)
class TopupAttemptAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "pack", "status", "payment_intent_id", "error"]
    list_filter = ["status", WorkspaceFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=payment_intent_id", "=idempotency_key", "workspace__slug"]
    list_select_related = ["workspace", "pack"]
    list_per_page = 100
    show_full_result_count = False

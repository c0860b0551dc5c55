"""Forms of the credits pages: they turn query strings and posted text into typed values with
clear messages; the rules themselves live in the selectors and services."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms

from apps.core.forms import DateRangeFilterForm
from apps.credits.amounts import to_credits, to_units
from apps.credits.models import CreditAccount, Service
from apps.credits.selectors import UsageFilters

# Far enough either side for any real usage, and no overflow turning a day into a datetime.
MAX_THRESHOLDS = 10
# Plain decimal text only: Decimal() would also take "1_000", "1e3" or " NaN".
AMOUNT_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,4})?")


def credits_text(units: int | None) -> str:
    """Units as plain editable text: 1_005_000 → "100.5" (no separators, no trailing zeros)."""
    if units is None:
        return ""
    return format(to_credits(units).normalize(), "f")


class UsageFilterForm(DateRangeFilterForm):
    service = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "Unknown service “%(value)s”."},
    )
    model = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "This workspace has no usage of model “%(value)s”."},
    )
    member = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        error_messages={"invalid_choice": "That member is not in this workspace."},
    )

    def __init__(
        self,
        data: Any = None,
        *,
        models: list[str],
        members: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        fields: Any = self.fields
        fields["service"].choices = [("", "All services"), *Service.choices]
        fields["model"].choices = [("", "All models")] + [(m, m) for m in models]
        fields["member"].choices = [("", "All members")] + [(str(pk), label) for pk, label in members]

    def filters(self) -> UsageFilters:
        data = self.cleaned_data
        return UsageFilters(
            start=data.get("start"),
            end=data.get("end"),
            service=data.get("service") or "",
            model=data.get("model") or "",
            user_id=data.get("member"),
        )


def _units_or_none(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def credits_field(label: str, help_text: str = "", required: bool = False) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        min_value=Decimal("0.0001"),
        max_digits=16,
        decimal_places=4,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
        error_messages={
            "min_value": "Give an amount greater than zero, or leave it empty for no cap.",
            "max_decimal_places": "Use at most 4 decimal places.",
            "max_digits": "That amount is too large.",
            "max_whole_digits": "That amount is too large.",
        },
    )


class LimitsForm(forms.Form):
    """Spending caps and low-balance alerts (owners and admins)."""

    daily_cap = credits_field("Workspace daily cap", "Credits the whole workspace may spend per day.")
    monthly_cap = credits_field("Workspace monthly cap", "Credits the whole workspace may spend per month.")
    member_daily_cap = credits_field("Per-member daily cap", "Applies to each member separately.")
    member_monthly_cap = credits_field("Per-member monthly cap", "Applies to each member separately.")
    alert_thresholds = forms.CharField(
        label="Low-balance alerts",
        required=False,
        max_length=500,
        help_text="Comma-separated credit amounts, e.g. 100, 20. An email and a banner when the "
        "balance drops below each one.",
    )

    @classmethod
    def for_account(cls, account: CreditAccount) -> LimitsForm:
        return cls(
            initial={
                "daily_cap": credits_text(account.daily_cap_units),
                "monthly_cap": credits_text(account.monthly_cap_units),
                "member_daily_cap": credits_text(account.member_daily_cap_units),
                "member_monthly_cap": credits_text(account.member_monthly_cap_units),
                "alert_thresholds": ", ".join(credits_text(t) for t in account.alert_thresholds),
            }
        )

    def clean_alert_thresholds(self) -> list[int]:
        text = self.cleaned_data.get("alert_thresholds") or ""
        units: list[int] = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if not AMOUNT_RE.fullmatch(part):
                raise forms.ValidationError(f"“{part[:20]}” is not an amount of credits (at most 4 decimal places).")
            value = to_units(part)
            if value <= 0:
                raise forms.ValidationError("Alert thresholds must be greater than zero.")
            units.append(value)
        if len(set(units)) > MAX_THRESHOLDS:
            raise forms.ValidationError(f"Give at most {MAX_THRESHOLDS} thresholds.")
        return units

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "daily_cap_units": _units_or_none(data.get("daily_cap")),
            "monthly_cap_units": _units_or_none(data.get("monthly_cap")),
            "member_daily_cap_units": _units_or_none(data.get("member_daily_cap")),
            "member_monthly_cap_units": _units_or_none(data.get("member_monthly_cap")),
            "alert_thresholds": data.get("alert_thresholds") or [],
        }


# ---------------------------------------------------------------------------- back office

MIN_CREDITS = Decimal("0.0001")  # one unit


class CreditsField(forms.DecimalField):
    """An amount of credits (≤ 4 decimal places) typed in the admin, for a value stored in units."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=14, decimal_places=4, **kwargs)


class CreditsInUnitsForm(forms.ModelForm):
    """An admin form whose credits are typed as decimal credits and stored as units:
    `credit_fields` pairs each form field with its model field."""

    credit_fields: tuple[tuple[str, str], ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for field, attr in self.credit_fields:
                self.initial[field] = to_credits(getattr(self.instance, attr))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        # Set before model validation (which runs after clean) so it checks the stored values.
        for field, attr in self.credit_fields:
            if data.get(field) is not None:
                setattr(self.instance, attr, to_units(data[field]))
        return data

"""Forms of the billing pages: they only turn posted text into typed values; which plan or pack
exists and what may be bought is decided by the views (404) and the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q

from apps.billing.models import AutoTopup, CreditPack, Plan
from apps.billing.money import money_display
from apps.credits.amounts import format_credits, to_units
from apps.credits.forms import credits_field, credits_text

EXPIRED = {
    "required": "This form has expired. Reload the page and try again.",
    "invalid": "This form has expired. Reload the page and try again.",
}


class SubscribeForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    interval = forms.ChoiceField(choices=Plan.Interval.choices)
    # One per rendered form: a double submit (or a reload) reuses the same Checkout session.
    request_key = forms.UUIDField(error_messages=EXPIRED)


class PackForm(forms.Form):
    pack = forms.SlugField(max_length=32)
    request_key = forms.UUIDField(error_messages=EXPIRED)


class ChangePlanForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    interval = forms.ChoiceField(choices=Plan.Interval.choices)


class RedeemForm(forms.Form):
    code = forms.CharField(max_length=40, strip=True, label="Redemption code")


class PackChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        pack: CreditPack = obj
        price = money_display(pack.price_cents, pack.currency)
        label = f"{pack.name}: {format_credits(pack.total_units)} credits for {price}"
        return label if pack.is_active else f"{label} (no longer for sale)"


class AutoTopupForm(forms.Form):
    """Automatic top-up (owners): below the threshold, the saved card buys one of the packs
    for sale, chosen from a list (posted by code). The pack already chosen stays in the list
    after staff stop selling it, so saving the page unchanged keeps it (the service allows
    keeping it; only switching to a pack not for sale is refused)."""

    auto_topup_enabled = forms.BooleanField(label="Top up automatically", required=False)
    auto_topup_threshold = credits_field(
        "When the balance drops below",
        "In credits, e.g. 100. The pack is bought once each time the balance falls this low.",
    )
    auto_topup_pack = PackChoiceField(
        queryset=CreditPack.objects.none(),
        to_field_name="code",
        required=False,
        label="Credit pack to buy",
        empty_label="Choose a pack",
        error_messages={"invalid_choice": "Choose one of the credit packs for sale."},
    )

    def __init__(self, *args: Any, current_pack: CreditPack | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        offered = Q(is_active=True)
        if current_pack is not None:
            offered |= Q(pk=current_pack.pk)
        field: Any = self.fields["auto_topup_pack"]
        field.queryset = CreditPack.objects.filter(offered)

    @classmethod
    def for_topup(cls, topup: AutoTopup | None) -> AutoTopupForm:
        if topup is None:
            return cls()
        return cls(
            current_pack=topup.pack,
            initial={
                "auto_topup_enabled": topup.enabled,
                "auto_topup_threshold": credits_text(topup.threshold_units),
                "auto_topup_pack": topup.pack.code if topup.pack is not None else "",
            },
        )

    @property
    def has_packs(self) -> bool:
        """Whether there is any pack to choose (none for sale yet: the page says so)."""
        field: Any = self.fields["auto_topup_pack"]
        return bool(field.queryset.exists())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("auto_topup_enabled"):
            if not data.get("auto_topup_threshold") and "auto_topup_threshold" not in self.errors:
                self.add_error("auto_topup_threshold", "Give the balance that triggers a top-up.")
            if not data.get("auto_topup_pack") and "auto_topup_pack" not in self.errors:
                self.add_error("auto_topup_pack", "Choose the pack to buy.")
        return data

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        threshold = data.get("auto_topup_threshold")
        return {
            "enabled": bool(data.get("auto_topup_enabled")),
            "threshold_units": to_units(threshold) if threshold is not None else None,
            "pack": data.get("auto_topup_pack"),
        }


def first_error(form: forms.Form) -> str:
    """A one-line message for a form that did not come from our page (or was tampered with)."""
    for field, errors in form.errors.items():
        if field not in form.fields or field == "request_key":
            return str(errors[0])
        label = form.fields[field].label or field.replace("_", " ").capitalize()
        return f"{label}: {errors[0]}"
    return "The form was incomplete."

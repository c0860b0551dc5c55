"""The create-key form: turns posted text into typed values with clear messages; the rules
themselves (known scopes and models, positive caps, future expiry) live in the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from apps.apikeys.models import Scope
from apps.core.forms import CleanTextMixin
from apps.credits.amounts import to_units
from apps.credits.forms import credits_field

MAX_EXPIRY_DAYS = 3650


class ApiKeyForm(CleanTextMixin, forms.Form):
    name = forms.CharField(max_length=100, strip=True, help_text="Where the key is used, e.g. “Support bot”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        # What most keys are for: the form submitted as it comes makes a working chat key.
        initial=[Scope.CHAT.value],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        help_text="Leave empty for a key that does not expire.",
    )
    daily_cap = credits_field("Daily spending cap (credits)", "Per UTC day; empty for no cap.")
    monthly_cap = credits_field("Monthly spending cap (credits)", "Per UTC month; empty for no cap.")
    allowed_models = forms.MultipleChoiceField(
        required=False,
        help_text="Leave none selected to allow every model the workspace may use.",
        error_messages={"invalid_choice": "“%(value)s” is not an available model."},
    )

    def __init__(self, *args: Any, models: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["allowed_models"]
        field.choices = models
        field.widget.attrs["size"] = min(max(len(models), 2), 8)

    def visible_fields(self) -> list[Any]:
        # The scope checkboxes are rendered by the page as their own fieldset (a group of
        # checkboxes cannot sit inside the one <label> the shared fields include gives a field).
        return [field for field in super().visible_fields() if field.name != "scopes"]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        days = data.get("expires_in_days")
        return {
            "name": data["name"],
            "scopes": data["scopes"],
            "expires_at": timezone.now() + timedelta(days=days) if days else None,
            "daily_cap_units": to_units(data["daily_cap"]) if data.get("daily_cap") is not None else None,
            "monthly_cap_units": to_units(data["monthly_cap"]) if data.get("monthly_cap") is not None else None,
            "allowed_models": data.get("allowed_models") or [],
        }

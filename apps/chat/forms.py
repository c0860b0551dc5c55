"""Forms of the chat pages: they turn query strings and posted text into typed values with
clear messages; the rules (ranges, model availability) live in `apps.chat.services`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from apps.chat.selectors import ConversationFilters
from apps.core.forms import DateRangeFilterForm, ErrorTextMixin
from apps.generation.models import AIModel


class ConversationFilterForm(DateRangeFilterForm):
    field_order = ["q", "start", "end", "model"]
    q = forms.CharField(required=False, max_length=200, label="Search")
    model = forms.ChoiceField(required=False, error_messages={"invalid_choice": "Unknown model “%(value)s”."})

    def __init__(self, data: Any = None, *, models: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        field: Any = self.fields["model"]
        field.choices = [("", "All models"), *models]

    def filters(self) -> ConversationFilters:
        data = self.cleaned_data
        return ConversationFilters(
            q=(data.get("q") or "").strip(),
            start=data.get("start"),
            end=data.get("end"),
            model=data.get("model") or "",
        )


class _ModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.display_name)


def _model_field(models: list[AIModel], label: str = "Model") -> _ModelChoiceField:
    return _ModelChoiceField(
        queryset=AIModel.objects.filter(pk__in=[m.pk for m in models]),
        to_field_name="model_id",
        label=label,
        empty_label=None,
        error_messages={"invalid_choice": "That model is not available."},
    )


class NewConversationForm(ErrorTextMixin, forms.Form):
    system_prompt = forms.CharField(
        required=False, label="System prompt (optional)", widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, data: Any = None, *, models: list[AIModel], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields = {"model": _model_field(models), **self.fields}


class RenameForm(ErrorTextMixin, forms.Form):
    title = forms.CharField(required=False, max_length=200, label="Title")


class ModelSwitchForm(ErrorTextMixin, forms.Form):
    def __init__(self, data: Any = None, *, models: list[AIModel], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["model"] = _model_field(models)


class SettingsForm(ErrorTextMixin, forms.Form):
    system_prompt = forms.CharField(required=False, label="System prompt", widget=forms.Textarea(attrs={"rows": 3}))
    temperature = forms.DecimalField(
        required=False,
        label="Temperature (0 to 2)",
        max_digits=3,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("2"),
        widget=forms.NumberInput(attrs={"step": "0.1", "min": "0", "max": "2"}),
        error_messages={
            "min_value": "Temperature must be between 0 and 2.",
            "max_value": "Temperature must be between 0 and 2.",
            "max_digits": "Temperature must be between 0 and 2.",
            "max_whole_digits": "Temperature must be between 0 and 2.",
            "max_decimal_places": "Use at most 2 decimal places.",
        },
    )
    max_tokens = forms.IntegerField(required=False, label="Max tokens", min_value=1, max_value=10_000_000)

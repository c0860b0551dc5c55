"""Form pieces shared by the list pages' filters."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms

EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)


class ErrorTextMixin:
    """`error_text()`: every error of the form on one line, for a page's 400 answer."""

    errors: Any
    fields: Any

    def error_text(self) -> str:
        """Every error on one line, for the 400 answers."""
        messages: list[str] = []
        for name, errors in self.errors.items():
            label = "" if name == "__all__" else f"{self.fields[name].label or name.title()}: "
            messages.extend(f"{label}{error}" for error in errors)
        return " ".join(messages)


class FilterFormMixin(ErrorTextMixin):
    """A filter form with optional `start`/`end` dates, kept to a sane range with start ≤ end."""

    cleaned_data: dict[str, Any]

    def _clean_day(self, name: str) -> date | None:
        value: date | None = self.cleaned_data.get(name)
        if value is not None and not EARLIEST <= value <= LATEST:
            raise forms.ValidationError(f"Pick a date between {EARLIEST.isoformat()} and {LATEST.isoformat()}.")
        return value

    def clean_start(self) -> date | None:
        return self._clean_day("start")

    def clean_end(self) -> date | None:
        return self._clean_day("end")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}  # type: ignore[misc]
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class DateRangeFilterForm(FilterFormMixin, forms.Form):
    """Base of the list pages' filter forms: optional From/To dates."""

    start = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the start date as YYYY-MM-DD."},
    )
    end = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the end date as YYYY-MM-DD."},
    )

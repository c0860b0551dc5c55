"""Form pieces shared by the list pages' filters."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.validators import ProhibitNullCharactersValidator

from apps.core.validators import validate_identifier, validate_text

EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)


class CleanTextMixin:
    """Every text field of the form (a `CharField` or a subclass, but passwords) refuses NUL
    and control characters: free text keeps tab, line feed and carriage return; the fields
    named in `identifier_fields` refuse every control character (`apps.core.validators`).
    Django's own NUL check is replaced, so a NUL gives one message, not two."""

    identifier_fields: tuple[str, ...] = ()
    fields: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if not isinstance(field, forms.CharField) or isinstance(field.widget, forms.PasswordInput):
                continue
            validator = validate_identifier if name in self.identifier_fields else validate_text
            kept = [v for v in field.validators if not isinstance(v, ProhibitNullCharactersValidator)]
            field.validators = [*kept, validator]


class ErrorTextMixin(CleanTextMixin):
    """`error_text()`: every error of the form on one line, for a page's 400 answer. The forms
    of the pages built on it also get `CleanTextMixin`'s rule for their text fields."""

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

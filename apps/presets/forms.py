"""Forms of the preset pages: the preset itself (its variables edited row by row, one row per
`{{name}}` in the template) and the form that fills a preset's variables, built from them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.safestring import mark_safe

from apps.core.forms import ErrorTextMixin
from apps.generation.models import AIModel
from apps.presets.models import MAX_TEMPLATE, Preset
from apps.presets.selectors import PresetFilters
from apps.presets.variables import LONG_MAX, SHORT_MAX, TYPES, placeholders

TYPE_LABELS = {"short": "Short text", "long": "Long text", "select": "Choice", "number": "Number"}


class PresetFilterForm(ErrorTextMixin, forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    category = forms.ChoiceField(
        required=False, choices=[("", "All categories"), *Preset.Category.choices], label="Category"
    )
    scope = forms.ChoiceField(
        required=False,
        choices=[("", "All presets"), ("personal", "Mine"), ("workspace", "Workspace"), ("library", "Library")],
        label="Show",
    )
    favourites = forms.BooleanField(required=False, label="Favourites only")

    def filters(self) -> PresetFilters:
        data = self.cleaned_data
        return PresetFilters(
            query=(data.get("q") or "").strip(),
            category=data.get("category") or "",
            scope=data.get("scope") or "",
            favourites=bool(data.get("favourites")),
        )


class _ModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.display_name)


class PresetForm(ErrorTextMixin, forms.Form):
    name = forms.CharField(max_length=100)
    icon = forms.CharField(required=False, max_length=8, help_text="An emoji, optional.")
    description = forms.CharField(required=False, max_length=300)
    category = forms.ChoiceField(choices=Preset.Category.choices, initial=Preset.Category.WRITING)
    output = forms.ChoiceField(choices=Preset.Output.choices, label="Used for", initial=Preset.Output.CHAT)
    tags = forms.CharField(required=False, max_length=400, help_text="Separate tags with commas.")
    template = forms.CharField(
        max_length=MAX_TEMPLATE,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=mark_safe(  # a constant: the placeholders shown as code
            "Mark each variable as <code>{{name}}</code>, for example: <code>Write a post about {{topic}}.</code>"
        ),
    )
    system_prompt = forms.CharField(
        required=False, max_length=MAX_TEMPLATE, widget=forms.Textarea(attrs={"rows": 2}), label="System prompt"
    )
    default_model = _ModelChoiceField(
        queryset=AIModel.objects.none(),
        required=False,
        to_field_name="model_id",
        label="Model",
        empty_label="Any model",
    )
    temperature = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_value=Decimal(2),
        max_digits=3,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    shared = forms.BooleanField(required=False, label="Share with the workspace")

    def __init__(self, data: Any = None, *, models: list[AIModel], can_share: bool, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        field: Any = self.fields["default_model"]
        field.queryset = AIModel.objects.filter(pk__in=[m.pk for m in models])
        if not can_share:
            del self.fields["shared"]

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.pop("shared", None)
        return data


def variable_rows(template: str, data: QueryDict | None, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One editable row per placeholder of `template`: what was posted for it (`var-<name>-…`),
    else its current definition, else a required short text."""
    known = {v["name"]: v for v in current}
    rows = []
    for name in placeholders(template):
        base = dict(known.get(name, {"name": name, "type": "short", "required": True}))
        if data is not None and f"var-{name}-type" in data:
            base = {
                "name": name,
                "label": data.get(f"var-{name}-label", ""),
                "type": data.get(f"var-{name}-type", "short"),
                "required": data.get(f"var-{name}-required") == "on",
                "options": data.get(f"var-{name}-options", ""),
                "default": data.get(f"var-{name}-default", ""),
                "max_length": data.get(f"var-{name}-max_length", ""),
                "min": data.get(f"var-{name}-min", ""),
                "max": data.get(f"var-{name}-max", ""),
            }
        options = base.get("options") or []
        base["options_text"] = "\n".join(options) if isinstance(options, list) else str(options)
        rows.append(base)
    return rows


def definitions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as definitions for `clean_variables` (empty fields left out)."""
    out = []
    for row in rows:
        definition = {k: v for k, v in row.items() if k != "options_text" and v not in ("", None)}
        definition["required"] = bool(row.get("required"))
        if row.get("type") == "select":
            definition["options"] = row.get("options_text") or row.get("options") or ""
        else:
            definition.pop("options", None)
        out.append(definition)
    return out


def values_form(variables: list[dict[str, Any]], data: Any = None) -> forms.Form:
    """A form with one field per variable, typed and limited as the variable says (the final
    check is the preset's own, in `preset_render`)."""
    form = forms.Form(data)
    for variable in variables:
        label = variable.get("label") or variable["name"]
        required = bool(variable.get("required", True)) and not variable.get("default")
        initial = variable.get("default")
        kind = variable.get("type")
        field: forms.Field
        if kind == "long":
            field = forms.CharField(
                label=label,
                required=required,
                strip=False,
                max_length=variable.get("max_length", LONG_MAX),
                widget=forms.Textarea(attrs={"rows": 5}),
            )
        elif kind == "select":
            field = forms.ChoiceField(
                label=label, required=required, choices=[(o, o) for o in variable.get("options", [])]
            )
        elif kind == "number":
            attrs = {k: variable[k] for k in ("min", "max") if variable.get(k) is not None}
            field = forms.DecimalField(label=label, required=required, widget=forms.NumberInput(attrs=attrs))
        else:
            field = forms.CharField(label=label, required=required, max_length=variable.get("max_length", SHORT_MAX))
        field.initial = initial
        form.fields[variable["name"]] = field
    return form


__all__ = ["TYPES", "TYPE_LABELS", "PresetFilterForm", "PresetForm", "definitions", "values_form", "variable_rows"]

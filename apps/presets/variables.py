"""A preset's template and its typed variables: finding `{{name}}` placeholders, checking the
definitions staff and users write, and filling the template with values checked against them.

A definition: `name` (as in the template), `label`, `type` (`short` one line, `long` text,
`select` one of `options`, `number` with optional `min`/`max`), `required`, `max_length` (text)
and `default`. Placeholders without a definition are required short texts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.presets.exceptions import PresetError, PresetValuesInvalid

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,39})\s*\}\}")
TYPES = ("short", "long", "select", "number")
SHORT_MAX = 500
LONG_MAX = 20_000
MAX_VARIABLES = 20
MAX_OPTIONS = 50


def placeholders(template: str) -> list[str]:
    """The variable names in `template`, each once, in order of first use."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(template or ""):
        if name not in seen:
            seen.append(name)
    return seen


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _number(value: Any, what: str, name: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PresetError(f"Variable “{name}”: {what} must be a number.", param="variables") from None
    if not number.is_finite():
        raise PresetError(f"Variable “{name}”: {what} must be a number.", param="variables")
    return number


def clean_variables(template: str, definitions: Any) -> list[dict[str, Any]]:
    """Checked definitions for exactly the template's placeholders, in template order (missing
    ones become required short texts; ones the template no longer uses are dropped)."""
    if definitions in (None, ""):
        definitions = []
    if not isinstance(definitions, list) or not all(isinstance(d, dict) for d in definitions):
        raise PresetError("Variables must be a list of definitions.", param="variables")
    names = placeholders(template)
    if len(names) > MAX_VARIABLES:
        raise PresetError(f"A preset has at most {MAX_VARIABLES} variables.", param="template")
    given = {str(d.get("name", "")): d for d in definitions}
    cleaned = []
    for name in names:
        raw = given.get(name, {})
        kind = str(raw.get("type") or "short")
        if kind not in TYPES:
            raise PresetError(f"Variable “{name}”: the type must be one of {', '.join(TYPES)}.", param="variables")
        label = " ".join(str(raw.get("label") or _label(name)).split())[:100]
        variable: dict[str, Any] = {
            "name": name,
            "label": label,
            "type": kind,
            "required": bool(raw.get("required", True)),
        }
        if kind in ("short", "long"):
            ceiling = SHORT_MAX if kind == "short" else LONG_MAX
            limit = _number(raw.get("max_length"), "the longest length", name)
            if limit is not None and not 1 <= limit <= ceiling:
                raise PresetError(f"Variable “{name}”: the longest length is 1 to {ceiling:,}.", param="variables")
            variable["max_length"] = int(limit) if limit is not None else ceiling
        if kind == "select":
            options = raw.get("options")
            if isinstance(options, str):
                options = [o for o in (part.strip() for part in options.split("\n")) if o]
            if not isinstance(options, list) or not options or len(options) > MAX_OPTIONS:
                raise PresetError(f"Variable “{name}”: a choice needs 1 to {MAX_OPTIONS} options.", param="variables")
            variable["options"] = [" ".join(str(o).split())[:200] for o in options]
        if kind == "number":
            low, high = _number(raw.get("min"), "the minimum", name), _number(raw.get("max"), "the maximum", name)
            if low is not None and high is not None and low > high:
                raise PresetError(f"Variable “{name}”: the minimum is above the maximum.", param="variables")
            variable["min"] = str(low) if low is not None else None
            variable["max"] = str(high) if high is not None else None
        default = raw.get("default")
        if default not in (None, ""):
            variable["default"] = str(default)
            problem = _check(variable, str(default))
            if problem:  # a default that breaks its own rules
                raise PresetError(f"Variable “{name}”: the default does not fit. {problem}", param="variables")
        cleaned.append(variable)
    return cleaned


def _check(variable: dict[str, Any], value: str) -> str | None:
    """What is wrong with `value` for `variable` (None: fine)."""
    kind = variable["type"]
    if kind in ("short", "long"):
        if kind == "short" and "\n" in value:
            return "Use one line."
        if len(value) > variable.get("max_length", LONG_MAX):
            return f"At most {variable['max_length']:,} characters."
    elif kind == "select":
        if value not in variable.get("options", []):
            return "Pick one of the options."
    elif kind == "number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "Enter a number."
        if not number.is_finite():
            return "Enter a number."
        low, high = variable.get("min"), variable.get("max")
        if low is not None and number < Decimal(low):
            return f"At least {low}."
        if high is not None and number > Decimal(high):
            return f"At most {high}."
    return None


def fill(template: str, variables: list[dict[str, Any]], values: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by its value (or default); every problem is
    reported at once (`PresetValuesInvalid`)."""
    definitions = {v["name"]: v for v in variables}
    final: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in placeholders(template):
        variable = definitions.get(name) or {"name": name, "type": "short", "required": True, "max_length": SHORT_MAX}
        raw = values.get(name)
        value = "" if raw is None else str(raw).replace("\r\n", "\n").replace("\x00", "")
        if variable["type"] != "long":
            value = value.strip()
        if not value.strip():
            value = str(variable.get("default") or "")
        if not value.strip():
            if variable.get("required", True):
                errors[name] = "This is required."
            final[name] = ""
            continue
        problem = _check(variable, value)
        if problem:
            errors[name] = problem
        final[name] = value
    if errors:
        raise PresetValuesInvalid(errors)
    return PLACEHOLDER.sub(lambda match: final.get(match.group(1), ""), template)

"""The presets' refusals, as `DomainError`s (see `apps.core.errors`)."""

from __future__ import annotations

from typing import Any

from apps.core.errors import DomainError


class PresetError(DomainError):
    """A preset rule refused the change (bad template, variable definition, scope); `param`
    names the field and the message is safe to show."""

    status_code = 400
    code = "invalid_preset"
    default_message = "The preset cannot be saved that way."


class PresetValuesInvalid(PresetError):
    """Values given for a preset's variables broke its rules: `errors` maps each variable to
    what is wrong with it; `param` is the first of them."""

    code = "invalid_preset_values"
    default_message = "Some values do not fit the preset."

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(f"{first}: {errors[first]}", param=first)
        self.errors = errors

    def details(self) -> dict[str, Any]:
        return {"errors": self.errors}

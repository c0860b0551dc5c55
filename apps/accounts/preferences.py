"""Choices of profile preferences that apps above accounts own (the chat models offered as the
"Default model"). An app registers a function returning the current choices in its own
`profile_choices` module; the modules of every installed app are found by name, so accounts
never imports the apps built on it (as `exporters` does for data export sections)."""

from __future__ import annotations

from collections.abc import Callable

from django.utils.module_loading import autodiscover_modules

Choices = list[tuple[str, str]]
ChoicesFunction = Callable[[], Choices]

DEFAULT_MODEL = "default_model"

_CHOICES: dict[str, ChoicesFunction] = {}


def register(preference: str) -> Callable[[ChoicesFunction], ChoicesFunction]:
    """Register the function giving the choices of `preference` (value, label), in order."""

    def decorator(fn: ChoicesFunction) -> ChoicesFunction:
        _CHOICES[preference] = fn
        return fn

    return decorator


def preference_choices(preference: str) -> Choices:
    """The current choices of `preference`; none when no installed app offers any."""
    # Importing the modules registers their functions (once: imports are cached).
    autodiscover_modules("profile_choices")
    function = _CHOICES.get(preference)
    return function() if function is not None else []

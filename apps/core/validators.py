"""One rule for text that reaches the database, shared by every form and API serializer.

PostgreSQL refuses NUL in text columns (psycopg raises `DataError`) and `\\u0000` in jsonb, and
cannot store an unpaired surrogate at all: such input must be a 400 with a reason, never a 500.
Other control characters are no part of anything a person types; they are refused too.

- Free text (prompts, names, descriptions): tab, line feed and carriage return are allowed;
  NUL, the other C0 controls and unpaired surrogates are not.
- Identifiers (model ids, voices, formats, idempotency keys): no control character at all
  (C0, DEL, C1) and no unpaired surrogate.

`validate_text` and `validate_identifier` are Django validators (forms, and DRF fields, which
accept them); `json_control_character` finds the first offending string in nested JSON (keys
included) for the fields that store a JSON object.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

_TEXT_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_IDENTIFIER_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
CODE = "control_characters"


def control_character(value: str, *, identifier: bool = False) -> str | None:
    """The first character of `value` the rule refuses, or None."""
    match = (_IDENTIFIER_FORBIDDEN if identifier else _TEXT_FORBIDDEN).search(value)
    return match.group() if match else None


def describe(char: str) -> str:
    """`NUL (U+0000)`, `a control character (U+001B)`, `an unpaired surrogate (U+D800)`."""
    point = f"U+{ord(char):04X}"
    if char == "\x00":
        return f"NUL ({point})"
    if "\ud800" <= char <= "\udfff":
        return f"an unpaired surrogate ({point})"
    return f"a control character ({point})"


def problem(value: str, *, identifier: bool = False) -> str | None:
    """A message for a person when `value` breaks the rule, or None."""
    char = control_character(value, identifier=identifier)
    if char is None:
        return None
    return f"Contains {describe(char)}, which is not allowed here."


@deconstructible
class NoControlCharacters:
    """Refuses NUL and control characters (see the module docstring); non-strings pass."""

    code = CODE

    def __init__(self, *, identifier: bool = False) -> None:
        self.identifier = identifier

    def __call__(self, value: Any) -> None:
        if not isinstance(value, str):
            return
        message = problem(value, identifier=self.identifier)
        if message is not None:
            raise ValidationError(message, code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharacters) and other.identifier == self.identifier

    def __hash__(self) -> int:
        return hash((NoControlCharacters, self.identifier))


validate_text = NoControlCharacters()
validate_identifier = NoControlCharacters(identifier=True)


def json_control_character(data: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, message) of the first string in `data` — nested dicts and lists, keys
    included — that breaks the free-text rule; None when every string is fine."""
    if isinstance(data, str):
        message = problem(data)
        return (path, message) if message else None
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and (message := problem(key)) is not None:
                return path, f"A key {message[0].lower()}{message[1:]}"  # the key itself is no name to show
            found = json_control_character(value, f"{path}.{key}".strip("."))
            if found is not None:
                return found
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            found = json_control_character(value, f"{path}.{index}".strip("."))
            if found is not None:
                return found
    return None


def validate_json_text(value: Any) -> None:
    """A validator for JSON objects that are stored: every string in them is free text."""
    found = json_control_character(value)
    if found is not None:
        path, message = found
        raise ValidationError(f"{path}: {message}" if path else message, code=CODE)

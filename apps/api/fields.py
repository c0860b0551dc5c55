"""Serializer fields for text the APIs store: the shared rule of `apps.core.validators` (no NUL,
no control characters but tab/LF/CR in free text, none at all in identifiers) instead of DRF's
own NUL and surrogate checks, so one bad character gives one message."""

from __future__ import annotations

import json
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from apps.api.parsers import TOO_DEEP_MESSAGE, json_too_deep
from apps.core.validators import NoControlCharacters, validate_identifier, validate_json_text, validate_text


class TextField(serializers.CharField):
    """Free text that may be stored (a prompt, a name): tab, line feed and carriage return
    are fine, NUL and other control characters are a 400."""

    rule: NoControlCharacters = validate_text

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        replaced = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)
        self.validators = [v for v in self.validators if not isinstance(v, replaced)] + [self.rule]


class IdentifierField(TextField):
    """An identifier (a model id, a voice, a format, an idempotency key): no control
    character at all."""

    rule = validate_identifier


class StoredJSONField(serializers.JSONField):
    """A JSON value that is stored (jsonb refuses `\\u0000`): every string in it, keys
    included, follows the free-text rule. Sent as text (`binary=True`, a multipart field), it
    is refused when nested deeper than the JSON bodies may be, before it is parsed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [*self.validators, validate_json_text]

    def to_internal_value(self, data: Any) -> Any:
        if self.binary or getattr(data, "is_json_string", False):  # text to parse, as DRF's field
            try:
                text = data.decode() if isinstance(data, bytes) else data
                if isinstance(text, str) and json_too_deep(text):
                    raise serializers.ValidationError(TOO_DEEP_MESSAGE, code="json_too_deep")
                return json.loads(text, cls=self.decoder)
            except (TypeError, ValueError):  # UnicodeDecodeError and JSONDecodeError included
                self.fail("invalid")
        return super().to_internal_value(data)


class StoredDictField(serializers.DictField):
    """A JSON object that is stored: every string in it, keys included, is free text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [*self.validators, validate_json_text]

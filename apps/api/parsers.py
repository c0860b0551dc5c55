"""JSON bodies of both APIs, with their nesting depth capped before they are parsed.

Python's `json` recurses once per level: a body like `[[[[…]]]]` a few thousand levels deep
raises `RecursionError` (a 500), and one a few hundred deep still recurses through every
serializer and encoder after it. No request of ours nests anywhere near `MAX_JSON_DEPTH`, so a
cheap scan of the text refuses deeper bodies with a 400 first: strings are cut out (a bracket
inside a string does not nest), then the running depth of the brackets left is measured, all in
C-level loops (regex, `map`, `accumulate`)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

from apps.core.jsondepth import MAX_JSON_DEPTH, json_too_deep

__all__ = ["MAX_JSON_DEPTH", "DepthLimitedJSONParser", "json_too_deep"]

TOO_DEEP_CODE = "json_too_deep"
TOO_DEEP_MESSAGE = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser (the platform API's default), refusing bodies nested deeper than
    `MAX_JSON_DEPTH` with a 400 (`ParseError`, code `json_too_deep`) before parsing them."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            "".encode(encoding)  # a text codec only, as DRF's parser: no bz2_codec bodies
        except (LookupError, UnicodeError) as exc:
            raise ParseError(f'Unsupported charset "{encoding}" in request Content-Type header.') from exc
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if json_too_deep(text):
            raise ParseError(TOO_DEEP_MESSAGE, code=TOO_DEEP_CODE)
        parse_constant = strict_constant if self.strict else None
        try:
            return json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc

"""The nesting depth of JSON text, measured before it is parsed.

Python's `json` recurses once per level: a text like `[[[[…]]]]` a few thousand levels deep
raises `RecursionError`, and one a few hundred deep still recurses through everything that
walks it afterwards. Nothing we accept nests anywhere near `MAX_JSON_DEPTH`, so API bodies and
socket frames are measured first and deeper ones refused: strings are cut out (a bracket inside
a string does not nest), then the running depth of the brackets left is measured, all in C-level
loops (regex, `map`, `accumulate`)."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than `limit` levels deep. Text
    that is not JSON may answer either way; the parser refuses it afterwards."""
    if text.count("[") + text.count("{") <= limit:  # cannot nest deeper: the common case
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def loads_bounded(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, refusing text nested deeper than `limit` with a ValueError."""
    if isinstance(text, bytes):
        text = text.decode()
    if json_too_deep(text, limit):
        raise ValueError(f"JSON nested deeper than {limit} levels")
    return json.loads(text)

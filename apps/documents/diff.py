"""An inline diff of two texts, line by line, with the changed words marked inside lines that
were edited (difflib, no dependency). The page shows it as one column: removed lines, added
lines, unchanged lines (long unchanged runs folded to a few lines of context)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

CONTEXT = 3  # unchanged lines kept around each change
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass
class Segment:
    text: str
    changed: bool = False


@dataclass
class Line:
    kind: str  # "same", "add", "del" or "fold" (that many unchanged lines not shown)
    old_no: int | None = None
    new_no: int | None = None
    segments: list[Segment] = field(default_factory=list)
    folded: int = 0

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


@dataclass
class Diff:
    lines: list[Line]
    added: int
    removed: int

    @property
    def identical(self) -> bool:
        return not self.added and not self.removed


def _word_pair(old: str, new: str) -> tuple[list[Segment], list[Segment]]:
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            left.append(Segment("".join(a[i1:i2])))
            right.append(Segment("".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(Segment("".join(a[i1:i2]), changed=True))
        if j2 > j1:
            right.append(Segment("".join(b[j1:j2]), changed=True))
    return left, right


def text_diff(old: str, new: str, *, context: int = CONTEXT) -> Diff:
    a, b = old.split("\n"), new.split("\n")
    lines: list[Line] = []
    added = removed = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            same = [Line("same", i + 1, j1 + (i - i1) + 1, [Segment(a[i])]) for i in range(i1, i2)]
            lines.extend(same)
            continue
        removed += i2 - i1
        added += j2 - j1
        if op == "replace" and i2 - i1 == j2 - j1:  # edited lines: mark the words that changed
            pairs = [_word_pair(a[i1 + k], b[j1 + k]) for k in range(i2 - i1)]
            lines.extend(Line("del", i1 + k + 1, None, pairs[k][0]) for k in range(i2 - i1))
            lines.extend(Line("add", None, j1 + k + 1, pairs[k][1]) for k in range(j2 - j1))
            continue
        lines.extend(Line("del", i + 1, None, [Segment(a[i], changed=True)]) for i in range(i1, i2))
        lines.extend(Line("add", None, j + 1, [Segment(b[j], changed=True)]) for j in range(j1, j2))
    return Diff(lines=_fold(lines, context), added=added, removed=removed)


def _fold(lines: list[Line], context: int) -> list[Line]:
    """Keep `context` unchanged lines around each change; the rest become one "fold" line."""
    near = [False] * len(lines)
    for index, line in enumerate(lines):
        if line.kind != "same":
            for k in range(max(0, index - context), min(len(lines), index + context + 1)):
                near[k] = True
    if not any(line.kind != "same" for line in lines):
        return lines
    out: list[Line] = []
    run = 0
    for index, line in enumerate(lines):
        if line.kind == "same" and not near[index]:
            run += 1
            continue
        if run:
            out.append(Line("fold", folded=run))
            run = 0
        out.append(line)
    if run:
        out.append(Line("fold", folded=run))
    return out

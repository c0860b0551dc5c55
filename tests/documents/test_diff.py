"""The inline diff: changed lines, changed words inside edited lines, folded context."""

from __future__ import annotations

from apps.documents.diff import text_diff


def shown(old: str, new: str, context: int = 1) -> list[str]:
    out = []
    for line in text_diff(old, new, context=context).lines:
        if line.kind == "fold":
            out.append(f"… {line.folded}")
            continue
        text = "".join(f"[{s.text}]" if s.changed else s.text for s in line.segments)
        out.append({"same": "  ", "add": "+ ", "del": "- "}[line.kind] + text)
    return out


def test_identical_texts_have_no_changes() -> None:
    diff = text_diff("a\nb", "a\nb")
    assert diff.identical
    assert [line.kind for line in diff.lines] == ["same", "same"]


def test_an_edited_line_marks_only_the_words_that_changed() -> None:
    assert shown("the quick fox", "the slow fox") == ["- the [quick] fox", "+ the [slow] fox"]


def test_added_and_removed_lines_with_line_numbers() -> None:
    diff = text_diff("one\ntwo\nthree", "one\nthree\nfour")
    assert (diff.added, diff.removed) == (1, 1)
    assert [(line.kind, line.old_no, line.new_no, line.text) for line in diff.lines] == [
        ("same", 1, 1, "one"),
        ("del", 2, None, "two"),
        ("same", 3, 2, "three"),
        ("add", None, 3, "four"),
    ]


def test_long_unchanged_runs_are_folded_around_the_changes() -> None:
    old = "\n".join(f"line {n}" for n in range(1, 21))
    new = old.replace("line 10", "line ten")
    assert shown(old, new) == ["… 8", "  line 9", "- line [10]", "+ line [ten]", "  line 11", "… 9"]

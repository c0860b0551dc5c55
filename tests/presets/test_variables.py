"""Preset templates: placeholders, variable definitions checked, values checked and filled."""

from __future__ import annotations

import pytest

from apps.presets.exceptions import PresetError, PresetValuesInvalid
from apps.presets.variables import clean_variables, fill, placeholders

TEMPLATE = "Write about {{topic}} for {{ audience }} in a {{tone}} tone, {{words}} words. {{topic}} again."


def test_placeholders_are_found_once_each_in_order() -> None:
    assert placeholders(TEMPLATE) == ["topic", "audience", "tone", "words"]
    assert placeholders("no variables {{ 1bad }} {single}") == []


def test_definitions_follow_the_template() -> None:
    variables = clean_variables(
        TEMPLATE,
        [
            {"name": "tone", "type": "select", "options": ["warm", "formal"], "default": "warm"},
            {"name": "words", "type": "number", "min": 50, "max": 500},
            {"name": "gone", "type": "long"},  # no longer in the template: dropped
        ],
    )
    assert [v["name"] for v in variables] == ["topic", "audience", "tone", "words"]
    assert variables[0] == {"name": "topic", "label": "Topic", "type": "short", "required": True, "max_length": 500}
    assert variables[2]["options"] == ["warm", "formal"]
    assert (variables[3]["min"], variables[3]["max"]) == ("50", "500")


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "topic", "type": "colour"}, "type must be one of"),
        ({"name": "topic", "type": "select"}, "needs 1 to 50 options"),
        ({"name": "topic", "type": "number", "min": 5, "max": 1}, "minimum is above the maximum"),
        ({"name": "topic", "type": "number", "min": "x"}, "must be a number"),
        ({"name": "topic", "type": "short", "max_length": 100000}, "longest length is 1 to 500"),
        ({"name": "topic", "type": "select", "options": ["a"], "default": "b"}, None),
    ],
)
def test_bad_definitions_are_refused(definition: dict[str, object], message: str | None) -> None:
    if message is None:  # a default that breaks its own rules: refused too
        with pytest.raises(PresetError):
            clean_variables("{{topic}}", [definition])
        return
    with pytest.raises(PresetError, match=message) as refused:
        clean_variables("{{topic}}", [definition])
    assert refused.value.param == "variables"


def test_filling_checks_every_value_and_reports_all_problems_at_once() -> None:
    variables = clean_variables(
        TEMPLATE,
        [
            {"name": "tone", "type": "select", "options": ["warm", "formal"]},
            {"name": "words", "type": "number", "min": 50, "max": 500},
            {"name": "audience", "required": False},
        ],
    )
    with pytest.raises(PresetValuesInvalid) as refused:
        fill(TEMPLATE, variables, {"tone": "angry", "words": "5000"})
    assert refused.value.errors == {
        "topic": "This is required.",
        "tone": "Pick one of the options.",
        "words": "At most 500.",
    }
    assert (refused.value.status_code, refused.value.code, refused.value.param) == (
        400,
        "invalid_preset_values",
        "topic",
    )
    text = fill(TEMPLATE, variables, {"topic": "tea", "tone": "warm", "words": "100"})
    assert text == "Write about tea for  in a warm tone, 100 words. tea again."


def test_values_are_not_expanded_again_and_defaults_fill_gaps() -> None:
    variables = clean_variables("{{a}} {{b}}", [{"name": "b", "default": "bee"}])
    assert fill("{{a}} {{b}}", variables, {"a": "{{b}}"}) == "{{b}} bee"
    with pytest.raises(PresetValuesInvalid) as refused:
        fill("{{a}}", clean_variables("{{a}}", []), {"a": "two\nlines"})
    assert refused.value.errors == {"a": "Use one line."}

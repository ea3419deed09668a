"""The edit form and the schema check, on the schemas the Agents SDK generates."""

from typing import Any

import pytest
from agents import function_tool

from bot.approvals import editing


@function_tool
def ship(order_id: str, count: int, express: bool, tags: list[str], note: str | None) -> str:
    """Ship an order.

    Args:
        order_id: The order.
        count: How many.
        express: Fast?
        tags: Labels.
        note: Anything.
    """
    return order_id


SCHEMA = ship.params_json_schema
CALL = '{"order_id": "o1", "count": 2, "express": false, "tags": ["a"], "note": null}'


def submitted(**values: str) -> dict[str, str | None]:
    return {f"arg:{name}": value for name, value in values.items()}


def test_fields_show_strings_as_they_are_and_anything_else_as_json() -> None:
    fields = editing.fields_of(CALL)
    assert [(f.block_id, f.value) for f in fields] == [
        ("arg:order_id", "o1"),
        ("arg:count", "2"),
        ("arg:express", "false"),
        ("arg:tags", '["a"]'),
        ("arg:note", "null"),
    ]


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ("[1, 2]", "not a JSON object"),
        ("not json", "not valid JSON"),
        ('{"a": "' + "x" * 3001 + '"}', "longer than a Slack form field"),
        ("{" + ", ".join(f'"a{i}": 1' for i in range(100)) + "}", "more than a Slack form"),
    ],
)
def test_calls_a_modal_cannot_hold_are_not_editable(arguments: str, why: str) -> None:
    with pytest.raises(editing.NotEditable, match=why):
        editing.fields_of(arguments)


def test_the_form_as_shown_gives_the_call_back_unchanged() -> None:
    fields = editing.fields_of(CALL)
    values = {f.block_id: f.value for f in fields}
    arguments, errors = editing.read_fields(fields, values, SCHEMA)
    assert (arguments, errors) == (
        {"order_id": "o1", "count": 2, "express": False, "tags": ["a"], "note": None},
        {},
    )


def test_valid_values_become_the_arguments() -> None:
    fields = editing.fields_of(CALL)
    values = submitted(order_id="42", count="3", express="true", tags='["a", "b"]', note='"hi"')
    arguments, errors = editing.read_fields(fields, values, SCHEMA)
    assert errors == {}
    # "42" stays text where the schema says string; note may be a string or null: a string
    # argument as typed, so the quotes stay
    assert arguments == {
        "order_id": "42",
        "count": 3,
        "express": True,
        "tags": ["a", "b"],
        "note": '"hi"',
    }


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("count", "three", "Not valid JSON"),
        ("count", "2.5", "must be a whole number"),
        ("count", "NaN", "Not valid JSON"),
        ("express", "1", "must be true or false"),
        ("tags", '["a", 1]', "[1]: must be a string"),
        ("tags", '{"a": 1}', "must be a JSON array"),
    ],
)
def test_invalid_values_are_errors_on_their_own_input(name: str, value: str, error: str) -> None:
    fields = editing.fields_of(CALL)
    values = submitted(order_id="o1", count="2", express="false", tags="[]", note="")
    values[f"arg:{name}"] = value
    _arguments, errors = editing.read_fields(fields, values, SCHEMA)
    assert list(errors) == [f"arg:{name}"]
    assert error in errors[f"arg:{name}"]


@pytest.mark.parametrize(
    ("value", "schema", "wrong"),
    [
        (
            {"a": 1, "b": 2},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"a": {"type": "integer"}},
            },
            "`b` is not an argument",
        ),
        ({}, {"type": "object", "required": ["a"]}, "`a` is required"),
        ("c", {"enum": ["a", "b"]}, 'one of "a", "b"'),
        (True, {"enum": [1]}, "one of 1"),
        (0, {"type": "number", "exclusiveMinimum": 0}, "more than 0"),
        ("", {"type": "string", "minLength": 1}, "at least 1 characters"),
        (1, {"$ref": "#/$defs/Missing"}, "cannot be checked"),
        (1, {"anyOf": [{"type": "string"}, {"type": "null"}]}, "any of the forms"),
    ],
)
def test_the_schema_check(value: Any, schema: dict[str, Any], wrong: str) -> None:
    [(_path, message)] = editing.schema_errors(value, schema)
    assert wrong in message


def test_references_to_definitions_are_followed() -> None:
    schema = {
        "type": "object",
        "properties": {"item": {"$ref": "#/$defs/Item"}},
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    assert editing.schema_errors({"item": {"n": 1}}, schema) == []
    assert editing.schema_errors({"item": {"n": "x"}}, schema) == [
        (("item", "n"), "must be a whole number")
    ]

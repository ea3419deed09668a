"""Edit, then approve: a call's arguments as modal fields, the fields back as arguments, and
the check of those against the tool's JSON schema. Pure.

Slack's modals bound what can be edited (100 blocks, 3000 characters per prefilled input), so
a call beyond them is refused rather than shown cut short: an approver must never approve
arguments they could not see whole. The schema check covers what the Agents SDK generates for
function tools (`type`, `required`, `properties`, `additionalProperties`, `enum`, `items`,
`anyOf`, `$ref`, and the bounds pydantic fields add); the tool still validates its input.
"""

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FIELDS = 99  # Slack's 100 blocks per modal, less the heading
MAX_VALUE = 3000  # plain_text_input's initial_value
MAX_NAME = 250  # the name goes into a block_id (255 characters)
BLOCK_PREFIX = "arg:"
ERROR_LIMIT = 150  # keep an inline error to a line or two


@dataclass(frozen=True)
class Field:
    name: str
    value: str  # as the person sees it: a string as it is, anything else as JSON

    @property
    def block_id(self) -> str:
        return BLOCK_PREFIX + self.name


class NotEditable(Exception):
    """Why a call cannot be edited in a modal; said to the person who asked to."""


def fields_of(arguments: str) -> list[Field]:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        raise NotEditable("its arguments are not valid JSON") from None
    if not isinstance(parsed, dict):
        raise NotEditable("its arguments are not a JSON object")
    if not parsed:
        raise NotEditable("it has no arguments")
    if len(parsed) > MAX_FIELDS:
        raise NotEditable(f"it has {len(parsed)} arguments, more than a Slack form can hold")
    fields = []
    for name, value in parsed.items():
        if not name or len(name) > MAX_NAME:
            raise NotEditable("an argument's name is empty or too long for a Slack form")
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(shown) > MAX_VALUE:
            raise NotEditable("an argument is longer than a Slack form field can hold")
        fields.append(Field(name, shown))
    return fields


def read_fields(
    fields: Sequence[Field], submitted: Mapping[str, str | None], schema: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The submitted values as arguments, and the errors by block id (empty when valid).

    A value stays a string where the schema says the argument is a string (so `42` typed for a
    string is the text "42"), but for `null` where it may also be null (as it was shown);
    anything else is read as JSON.
    """
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    arguments: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        raw = submitted.get(field.block_id) or ""
        prop = properties.get(field.name)
        if isinstance(prop, Mapping) and _takes_string(prop, schema):
            # `null` where the argument may be null is null, as it was shown; text otherwise
            nullable = raw == "null" and not schema_errors(None, prop, schema)
            arguments[field.name] = None if nullable else raw
            continue
        try:
            arguments[field.name] = json.loads(raw, parse_constant=_no_constant)
        except ValueError:
            errors[field.block_id] = "Not valid JSON (put strings in quotes)."
    if errors:
        return arguments, errors
    for path, message in schema_errors(arguments, schema):
        block = BLOCK_PREFIX + path[0] if path else fields[0].block_id
        if block not in errors:
            where = "".join(f"[{p}]" for p in path[1:])
            errors[block] = _short(f"{where}: {message}" if where else message)
    return arguments, errors


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _short(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _takes_string(prop: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    prop = _resolve(prop, root)
    kind = prop.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return True
    branches = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(branches, list):
        return any(isinstance(b, Mapping) and _takes_string(b, root) for b in branches)
    return False


Path = tuple[str, ...]

_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    target: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else [None]:
        if part is None or not isinstance(target, Mapping) or part not in target:
            return {"not": {}}  # a reference we cannot follow accepts nothing
        target = target[part]
    return target if isinstance(target, Mapping) else {"not": {}}


def schema_errors(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, path: Path = ()
) -> list[tuple[Path, str]]:
    """What is wrong with `value` under `schema`, each with where it is (argument names and
    indexes from the top)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "not" in schema and schema["not"] == {}:
        return [(path, "cannot be checked against the tool's schema")]
    for key in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(key) or () if isinstance(b, Mapping)]
        if branches and all(schema_errors(value, b, root, path) for b in branches):
            return [(path, "does not match any of the forms the tool accepts")]
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(o, ensure_ascii=False) for o in schema["enum"][:10])
        return [(path, f"must be one of {options}")]
    if "const" in schema and not _same(value, schema["const"]):
        return [(path, f"must be {json.dumps(schema['const'], ensure_ascii=False)}")]
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else None
    if kinds is not None and not any(_TYPES.get(k, lambda _v: False)(value) for k in kinds):
        return [(path, f"must be {' or '.join(_A.get(k, k) for k in kinds)}")]
    if isinstance(value, dict):
        return _object_errors(value, schema, root, path)
    if isinstance(value, list):
        return _array_errors(value, schema, root, path)
    if isinstance(value, str):
        return _string_errors(value, schema, path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_errors(value, schema, path)
    return []


_A = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
    "object": "a JSON object",
    "array": "a JSON array",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: Any, option: Any) -> bool:
    """JSON equality: 1 and 1.0 are the same number, but true is not 1."""
    if _is_number(value) and _is_number(option):
        return bool(value == option)
    return type(value) is type(option) and bool(value == option)


def _object_errors(
    value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: Path
) -> list[tuple[Path, str]]:
    errors: list[tuple[Path, str]] = []
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(((*path, name) if path else (), f"`{name}` is required"))
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name)
        if isinstance(sub, Mapping):
            errors.extend(schema_errors(item, sub, root, (*path, name)))
        elif extra is False:
            errors.append(((*path, name), f"`{name}` is not an argument of this tool"))
        elif isinstance(extra, Mapping):
            errors.extend(schema_errors(item, extra, root, (*path, name)))
    return errors


def _array_errors(
    value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: Path
) -> list[tuple[Path, str]]:
    errors: list[tuple[Path, str]] = []
    if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
        errors.append((path, f"needs at least {schema['minItems']} items"))
    if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
        errors.append((path, f"takes at most {schema['maxItems']} items"))
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, items, root, (*path, str(index))))
    return errors


def _string_errors(value: str, schema: Mapping[str, Any], path: Path) -> list[tuple[Path, str]]:
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        return [(path, f"needs at least {schema['minLength']} characters")]
    if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
        return [(path, f"takes at most {schema['maxLength']} characters")]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return [(path, "is not in the form the tool expects")]
        except re.error:
            return [(path, "cannot be checked against the tool's pattern")]
    return []


_BOUNDS = (
    ("minimum", "at least"),
    ("maximum", "at most"),
    ("exclusiveMinimum", "more than"),
    ("exclusiveMaximum", "less than"),
)


def _within(value: float, key: str, bound: float) -> bool:
    if key == "minimum":
        return value >= bound
    if key == "maximum":
        return value <= bound
    if key == "exclusiveMinimum":
        return value > bound
    return value < bound


def _number_errors(value: float, schema: Mapping[str, Any], path: Path) -> list[tuple[Path, str]]:
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, "must be a finite number")]
    for key, words in _BOUNDS:
        bound = schema.get(key)
        if isinstance(bound, int | float) and _is_number(bound) and not _within(value, key, bound):
            return [(path, f"must be {words} {bound:g}")]
    return []

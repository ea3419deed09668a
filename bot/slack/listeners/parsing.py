"""Reading Slack payloads defensively: a field of the wrong shape is a 400, never a 500."""

import re
from typing import Any

from slack_bolt.response import BoltResponse


class MalformedPayload(Exception):
    pass


def field_str(data: Any, *path: str, required: bool = True) -> str | None:
    """The string at `path`, or None when optional and absent; anything else is malformed."""
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            if required:
                raise MalformedPayload("missing " + ".".join(path))
            return None
        node = node[key]
    if node is None and not required:
        return None
    if not isinstance(node, str):
        raise MalformedPayload(".".join(path) + " is not a string")
    return node


def require(data: Any, *path: str) -> str:
    value = field_str(data, *path)
    assert value is not None
    return value


# Slack's ids and timestamps ("U0123ABC", "1700000001.000100"). They become parts of database
# keys joined with ":" and columns of 32 characters (64 for event ids).
SLACK_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
EVENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def slack_id(
    data: Any, *path: str, required: bool = True, shape: re.Pattern[str] = SLACK_ID
) -> str | None:
    value = field_str(data, *path, required=required)
    if not value and not required:
        return None
    if value is not None and not shape.fullmatch(value):
        raise MalformedPayload(".".join(path) + " is not a Slack id")
    return value


def require_id(data: Any, *path: str, shape: re.Pattern[str] = SLACK_ID) -> str:
    value = slack_id(data, *path, shape=shape)
    assert value is not None
    return value


def bad_request(exc: MalformedPayload) -> BoltResponse:
    return BoltResponse(status=400, body=f"malformed payload: {exc}")

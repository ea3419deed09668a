"""Reading Slack payloads defensively: a field of the wrong shape is a 400, never a 500."""

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


def bad_request(exc: MalformedPayload) -> BoltResponse:
    return BoltResponse(status=400, body=f"malformed payload: {exc}")

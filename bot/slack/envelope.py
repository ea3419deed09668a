"""The least shape a Slack request body must have before Bolt may look at it.

Bolt's matchers index into payloads (`view.type`, `actions[0].action_id`, `event.type`) and a
missing field surfaces as a 500. Slack never sends such bodies, so anything failing these checks
is answered 400 before Bolt sees it.
"""

import json
from typing import Any
from urllib.parse import parse_qs


class BadBody(Exception):
    pass


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadBody(f"{what} is not an object")
    return value


def _string(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadBody(f"{what}.{key} is missing or not a string")
    return value


def _check_event_callback(data: dict[str, Any]) -> None:
    event = _object(data.get("event"), "event")
    _string(event, "type", "event")
    _string(data, "event_id", "body")
    if "subtype" in event and not isinstance(event["subtype"], str | None):
        raise BadBody("event.subtype is not a string")


def _check_interaction(payload: dict[str, Any]) -> None:
    kind = _string(payload, "type", "payload")
    _string(_object(payload.get("user"), "payload.user"), "id", "payload.user")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            raise BadBody("payload.actions is missing or empty")
        for index, action in enumerate(actions):
            what = f"payload.actions[{index}]"
            _string(_object(action, what), "action_id", what)
            if not isinstance(action.get("block_id", ""), str):
                raise BadBody(f"{what}.block_id is not a string")
    elif kind in ("view_submission", "view_closed"):
        view = _object(payload.get("view"), "payload.view")
        _string(view, "type", "payload.view")
        _string(view, "callback_id", "payload.view")
        if not isinstance(view.get("private_metadata", ""), str):
            raise BadBody("payload.view.private_metadata is not a string")
        if not isinstance(view.get("state", {}), dict):
            raise BadBody("payload.view.state is not an object")


def check(body: str, content_type: str) -> None:
    if "json" in content_type or body.lstrip().startswith("{"):
        try:
            data = _object(json.loads(body), "body")
        except ValueError:
            raise BadBody("body is not valid JSON") from None
        kind = data.get("type")
        if kind == "event_callback":
            _check_event_callback(data)
        elif kind == "url_verification":
            _string(data, "challenge", "body")
        elif not isinstance(kind, str):
            raise BadBody("body has no type")
        return
    form = parse_qs(body, keep_blank_values=True)
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except ValueError:
            raise BadBody("payload is not valid JSON") from None
        _check_interaction(_object(payload, "payload"))
        return
    if "command" in form:
        for key in ("command", "user_id", "channel_id", "team_id"):
            if not form.get(key, [""])[0]:
                raise BadBody(f"command field {key} is missing")
        return
    raise BadBody("neither an event, an interaction nor a command")

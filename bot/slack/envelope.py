"""What a signed body must look like before Bolt may route it, checked on Bolt's own parse.

Bolt reads a body in two stages. Building the request (`AsyncBoltRequest`) parses it and pulls
ids out of it (`authorizations[0]`, `user`, `team`, `enterprise`, `channel`, in the event and in
the messages inside it). Routing then indexes into it: middleware (`event.bot_id`), matchers
(`event.type`, `actions[0].action_id`, `view.callback_id`) and the arguments Bolt prepares for
every matcher and listener (`actions[0]`, `view.type`, `workflow_step`). A field of the wrong
shape raises in either stage, and Bolt answers that with a 500.

Slack never sends such bodies, so they are a 400: the first stage runs under a guard, and the
body it produced is checked for every field the second stage reads. The checks follow the shape
of the body, not the route it came in by, because Bolt treats a JSON body and a form `payload`
alike.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest


class BadBody(Exception):
    pass


# Bolt takes each of these as an id (a string) or an object holding an `id`.
_IDS = ("user", "team", "enterprise", "channel")
# ...and looks for them again in these nested objects, as deep as they go.
_CARRIERS = ("event", "message", "previous_message", "item", "assistant_thread")
_ASSISTANT_THREAD_EVENTS = ("assistant_thread_started", "assistant_thread_context_changed")
_INTERACTIONS = {
    "block_actions",
    "block_suggestion",
    "interactive_message",
    "dialog_submission",
    "dialog_cancellation",
    "dialog_suggestion",
    "shortcut",
    "message_action",
    "view_submission",
    "view_closed",
    "workflow_step_edit",
}


def parse(body: str, *, query: str, headers: Mapping[str, str | Sequence[str]]) -> AsyncBoltRequest:
    """Bolt's request for a body that Bolt can route, or BadBody.

    Building the request is a function of the body alone, so whatever it raises (a JSON error,
    a RecursionError on deep nesting, a TypeError on a wrong-typed id) is the body's fault.
    """
    try:
        request = AsyncBoltRequest(body=body, query=query, headers=dict(headers))
        check(request.body)
    except BadBody:
        raise
    except Exception as exc:
        raise BadBody(f"unreadable body ({type(exc).__name__})") from None
    return request


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadBody(f"{what} is not an object")
    return value


def _string(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadBody(f"{what}.{key} is missing or not a string")
    return value


def _check_strings(body: dict[str, Any]) -> None:
    """No NUL and no lone surrogate anywhere: JSON can carry them, no database column can."""
    pending: list[Any] = [body]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, str):
            if "\x00" in node:
                raise BadBody("a string holds a NUL character")
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise BadBody("a string is not valid Unicode") from None


def _check_ids(body: dict[str, Any]) -> None:
    pending: list[tuple[str, dict[str, Any]]] = [("body", body)]
    while pending:
        what, node = pending.pop()
        for key in _IDS:
            if not isinstance(node.get(key), str | dict | None):
                raise BadBody(f"{what}.{key} is neither an id nor an object")
        authorizations = node.get("authorizations")
        if authorizations is not None:
            if not isinstance(authorizations, list):
                raise BadBody(f"{what}.authorizations is not a list")
            for index, item in enumerate(authorizations):
                _object(item, f"{what}.authorizations[{index}]")
            if authorizations:
                pending.append((f"{what}.authorizations[0]", authorizations[0]))
        for key in _CARRIERS:
            carried = node.get(key)
            if isinstance(carried, dict):
                pending.append((f"{what}.{key}", carried))


def _check_event_callback(data: dict[str, Any]) -> None:
    event = _object(data.get("event"), "event")
    _string(event, "type", "event")
    _string(data, "event_id", "body")
    if not isinstance(event.get("subtype"), str | None):
        raise BadBody("event.subtype is not a string")
    if event["type"] in _ASSISTANT_THREAD_EVENTS:
        # Bolt's conversation middleware reads both, before any listener, for these events.
        thread = _object(event.get("assistant_thread"), "event.assistant_thread")
        _string(thread, "channel_id", "event.assistant_thread")
        _string(thread, "thread_ts", "event.assistant_thread")


def _check_actions(payload: dict[str, Any], kind: str) -> None:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise BadBody("payload.actions is missing or empty")
    for index, action in enumerate(actions):
        what = f"payload.actions[{index}]"
        _object(action, what)
        if kind == "block_actions":
            _string(action, "action_id", what)
            if not isinstance(action.get("block_id", ""), str):
                raise BadBody(f"{what}.block_id is not a string")


def _check_interaction(payload: dict[str, Any], kind: str) -> None:
    _string(_object(payload.get("user"), "payload.user"), "id", "payload.user")
    if kind == "block_actions" or (kind == "interactive_message" and "callback_id" in payload):
        _check_actions(payload, kind)
    view_type = None
    if kind in ("view_submission", "view_closed"):
        view = _object(payload.get("view"), "payload.view")
        view_type = _string(view, "type", "payload.view")
        _string(view, "callback_id", "payload.view")
        if not isinstance(view.get("private_metadata", ""), str):
            raise BadBody("payload.view.private_metadata is not a string")
        if not isinstance(view.get("state", {}), dict):
            raise BadBody("payload.view.state is not an object")
    step = (kind == "view_submission" and view_type == "workflow_step") or (
        kind == "workflow_step_edit" and "callback_id" in payload
    )
    if step and "workflow_step" not in payload:
        raise BadBody("payload.workflow_step is missing")


def _check_command(form: dict[str, Any]) -> None:
    for key in ("command", "user_id", "channel_id", "team_id"):
        if not isinstance(form.get(key), str) or not form[key]:
            raise BadBody(f"command field {key} is missing")


def check(parsed: Any) -> None:
    """Refuse what Bolt's routing would trip over; `parsed` is Bolt's `request.body`."""
    body = _object(parsed, "body")
    _check_strings(body)
    _check_ids(body)
    if "event" in body:
        _object(body["event"], "event")
    response_urls = body.get("response_urls")
    if response_urls is not None and not (
        isinstance(response_urls, list) and all(isinstance(u, dict) for u in response_urls)
    ):
        raise BadBody("response_urls is not a list of objects")
    if body.get("ssl_check") == "1":
        _string(body, "token", "ssl_check")
        return
    kind = body.get("type")
    if "command" in body:
        _check_command(body)
        if kind is None:
            return
    if not isinstance(kind, str) or not kind:
        raise BadBody("neither an event, an interaction nor a command")
    if kind == "event_callback":
        _check_event_callback(body)
    elif kind == "url_verification":
        _string(body, "challenge", "body")
    elif kind in _INTERACTIONS:
        _check_interaction(body, kind)

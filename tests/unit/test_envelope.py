"""The shape checks hold on their own, not only because Bolt happens to parse eagerly today.

Bolt 1.30 extracts ids while it builds the request, so `envelope.parse` already refuses most of
these through its guard. If a later Bolt extracted them lazily, during routing, only `check`
would stand between such a body and a 500.
"""

from typing import Any

import pytest

from bot.slack import envelope

MENTION: dict[str, Any] = {
    "type": "event_callback",
    "event_id": "Ev1",
    "team_id": "T1",
    "event": {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.1"},
    "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
}


def _with(where: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**MENTION, "event": dict(MENTION["event"])}
    node = body
    *path, last = where.split(".")
    for key in path:
        node = node[key]
    node[last] = value
    return body


def test_a_well_formed_mention_passes() -> None:
    envelope.check(MENTION)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("authorizations", "T1"),
        ("authorizations", [7]),
        ("event.user", 12345),
        ("event.channel", 1.5),
        ("event.team", True),
        ("enterprise", 7),
        ("event.message", {"user": 5}),
        ("event.previous_message", {"channel": []}),
        ("response_urls", "https://hooks.slack.com/x"),
    ],
)
def test_ids_bolt_extracts_must_be_strings_or_objects(where: str, value: Any) -> None:
    with pytest.raises(envelope.BadBody):
        envelope.check(_with(where, value))

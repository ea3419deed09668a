"""The auto-approved post and the thread approval's lines: untrusted text stays literal and
within Slack's limits; Revoke shows only while the thread approval is in force."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack.blocks import (
    APPROVE_THREAD_ACTION,
    REVOKE_THREAD_ACTION,
    SECTION_LIMIT,
    approval_request,
)
from bot.slack.thread_blocks import auto_approved, with_thread_approval
from storage.models import ThreadApproval
from tests.unit.test_blocks_escaping import HOSTILE, _strings, _view, assert_only_our_markup

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _thread_approval(**overrides: object) -> ThreadApproval:
    fields: dict[str, object] = {
        "id": "ta_0123456789abcdef",
        "approval_id": "ap_0123456789abcdef",
        "team_id": "T1",
        "channel_id": "C1",
        "thread_ts": "1.2",
        "tool_name": "delete_customer",
        "approved_by": "U0APPROVER",
        "approvers": ["U0APPROVER"],
        "requesters": ["U0REQ"],
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=8),
    }
    fields.update(overrides)
    return ThreadApproval.model_validate(fields)


def _elements(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        element for block in body if block.get("type") == "actions" for element in block["elements"]
    ]


def test_the_auto_approved_post_escapes_the_tool_and_its_arguments_and_stays_in_limits() -> None:
    view = _view(
        tool_name=HOSTILE,
        arguments=json.dumps({"note": HOSTILE * 200}),
        rule_label=HOSTILE,
    )
    text, body = auto_approved(view, _thread_approval(), HOSTILE, NOW)
    assert_only_our_markup([text, *_strings(body)])
    assert "auto-approved under <@U0APPROVER>'s thread approval" in text
    for block in body:
        section = block.get("text")
        if isinstance(section, dict):
            assert len(section["text"]) <= SECTION_LIMIT
    [revoke] = _elements(body)
    assert (revoke["action_id"], revoke["value"]) == (REVOKE_THREAD_ACTION, "ta_0123456789abcdef")


def test_revoked_or_ended_there_is_no_revoke_button_and_the_post_says_why() -> None:
    revoked = _thread_approval(revoked_at=NOW, revoked_by="U0REQ")
    _, body = auto_approved(_view(), revoked, None, NOW)
    assert not _elements(body)
    assert "revoked by <@U0REQ>" in json.dumps(body)
    ended = _thread_approval(expires_at=NOW - timedelta(seconds=1))
    card = with_thread_approval([], ended, "delete_customer", NOW)
    assert not _elements(card)
    assert "Thread approval ended" in json.dumps(card)


def test_the_card_offers_the_button_only_when_its_view_allows_it() -> None:
    _, plain = approval_request(_view())
    assert APPROVE_THREAD_ACTION not in json.dumps(plain)
    _, offered = approval_request(
        _view(allow_for_thread=True, thread_approval_ttl=timedelta(hours=8))
    )
    [button] = [e for e in _elements(offered) if e["action_id"] == APPROVE_THREAD_ACTION]
    assert button["value"] == "ap_0123456789abcdef"
    assert "for 8 hours" in json.dumps(offered)

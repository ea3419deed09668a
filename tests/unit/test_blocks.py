"""Block Kit builders: the right buttons, and always within Slack's limits."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.slack.blocks import (
    APPROVE_ACTION,
    REJECT_ACTION,
    REJECT_VIEW,
    ApprovalView,
    Block,
    DecisionView,
    answers,
    approval_decided,
    approval_request,
    reject_modal,
    truncate,
)

APPROVAL_ID = "ap_0123456789abcdef"
DECIDED_AT = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)

ARGUMENTS_CASES = {
    "small_json": json.dumps({"customer_id": "c-42"}),
    "one_megabyte": json.dumps({"payload": "x" * 1_000_000}),
    "one_megabyte_not_json": "y" * 1_000_000,
    "not_json": "this is {not json",
    "code_fences": json.dumps({"note": "```rm -rf /```", "more": "a ``` b"}),
    "code_fences_not_json": "```\nclose the fence``` and *bold*",
}


def _view(arguments: str = '{"customer_id": "c-42"}', **overrides: Any) -> ApprovalView:
    fields: dict[str, Any] = {
        "approval_id": APPROVAL_ID,
        "tool_name": "delete_customer",
        "arguments": arguments,
        "requesters": ["U0REQUESTER"],
        "approvers": ["U0APPROVER", "S0GROUP"],
    }
    fields.update(overrides)
    return ApprovalView(**fields)


def _texts(block: Block) -> list[str]:
    """Every text string a block carries (section text and fields, context elements)."""
    found: list[str] = []
    if "text" in block and isinstance(block["text"], dict):
        found.append(block["text"]["text"])
    for element in block.get("elements", []):
        if element.get("type") in ("mrkdwn", "plain_text"):
            found.append(element["text"])
    for field in block.get("fields", []):
        found.append(field["text"])
    return found


def _assert_within_slack_limits(blocks: list[Block]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        for text in _texts(block):
            assert len(text) <= 3000
        assert len(block.get("block_id", "")) <= 255
        for element in block.get("elements", []):
            assert len(element.get("action_id", "")) <= 255
            assert len(element.get("value", "")) <= 2000


def _actions(blocks: list[Block]) -> list[Block]:
    return [block for block in blocks if block["type"] == "actions"]


def _button(blocks: list[Block], action_id: str) -> dict[str, Any]:
    (actions,) = _actions(blocks)
    buttons: list[dict[str, Any]] = [e for e in actions["elements"] if e["action_id"] == action_id]
    assert len(buttons) == 1
    return buttons[0]


def _arguments_text(blocks: list[Block]) -> str:
    (text,) = [t for b in blocks for t in _texts(b) if t.startswith("*Arguments*")]
    return text


# approval_request


def test_both_buttons_carry_only_the_approval_id() -> None:
    _, blocks = approval_request(_view())

    assert _button(blocks, APPROVE_ACTION)["value"] == APPROVAL_ID
    assert _button(blocks, REJECT_ACTION)["value"] == APPROVAL_ID


def test_approve_button_is_primary_and_says_approve() -> None:
    _, blocks = approval_request(_view())

    approve = _button(blocks, APPROVE_ACTION)
    assert approve["type"] == "button"
    assert approve["style"] == "primary"
    assert approve["text"]["text"].startswith("Approve")


def test_reject_button_is_danger_and_says_reject() -> None:
    _, blocks = approval_request(_view())

    reject = _button(blocks, REJECT_ACTION)
    assert reject["type"] == "button"
    assert reject["style"] == "danger"
    assert reject["text"]["text"].startswith("Reject")


def test_request_shows_tool_arguments_requester_and_approvers() -> None:
    fallback, blocks = approval_request(_view())
    everything = "\n".join(t for b in blocks for t in _texts(b))

    assert "delete_customer" in fallback
    assert "delete_customer" in everything
    assert "c-42" in _arguments_text(blocks)
    assert "<@U0REQUESTER>" in everything
    assert "<@U0APPROVER>" in everything
    assert "<!subteam^S0GROUP>" in everything


@pytest.mark.parametrize("arguments", ARGUMENTS_CASES.values(), ids=ARGUMENTS_CASES.keys())
def test_request_stays_within_slack_limits(arguments: str) -> None:
    fallback, blocks = approval_request(_view(arguments))

    _assert_within_slack_limits(blocks)
    assert len(fallback) <= 3000
    assert len(_actions(blocks)) == 1


def test_request_with_a_huge_tool_name_and_many_approvers_stays_within_limits() -> None:
    view = _view(
        "z" * 1_000_000,
        tool_name="t" * 10_000,
        approvers=[f"U{i:08d}" for i in range(500)],
    )

    fallback, blocks = approval_request(view)

    _assert_within_slack_limits(blocks)
    assert len(fallback) <= 3000


def test_huge_arguments_are_truncated_with_a_marker() -> None:
    _, blocks = approval_request(_view("y" * 1_000_000))

    text = _arguments_text(blocks)
    assert "more characters" in text
    assert text.endswith("```")


def test_non_json_arguments_are_shown_as_they_are() -> None:
    _, blocks = approval_request(_view("this is {not json"))

    assert "this is {not json" in _arguments_text(blocks)


def test_json_arguments_are_pretty_printed() -> None:
    _, blocks = approval_request(_view('{"b":1,"a":2}'))

    assert '{\n  "a": 2,\n  "b": 1\n}' in _arguments_text(blocks)


@pytest.mark.parametrize(
    "arguments",
    [ARGUMENTS_CASES["code_fences"], ARGUMENTS_CASES["code_fences_not_json"]],
    ids=["json", "not_json"],
)
def test_arguments_cannot_close_the_code_block(arguments: str) -> None:
    _, blocks = approval_request(_view(arguments))

    text = _arguments_text(blocks)
    body = text.removeprefix("*Arguments*\n")
    assert body.startswith("```")
    assert body.endswith("```")
    assert "```" not in body[3:-3]


# approval_decided


def test_decided_message_has_no_buttons() -> None:
    for decision in (
        DecisionView(status="approved", decided_by="U0APPROVER", decided_at=DECIDED_AT),
        DecisionView(status="rejected", decided_by="U0APPROVER", decided_at=DECIDED_AT),
        DecisionView(status="expired", decided_by=None, decided_at=DECIDED_AT),
    ):
        _, blocks = approval_decided(_view(), decision)
        assert _actions(blocks) == []
        assert not any(
            element.get("type") == "button" for b in blocks for element in b.get("elements", [])
        )


def _decision_text(blocks: list[Block]) -> str:
    return _texts(blocks[-1])[0]


def test_approved_message_says_who_approved() -> None:
    decision = DecisionView(status="approved", decided_by="U0APPROVER", decided_at=DECIDED_AT)

    fallback, blocks = approval_decided(_view(), decision)

    line = _decision_text(blocks)
    assert "Approved by <@U0APPROVER>" in line
    assert str(int(DECIDED_AT.timestamp())) in line
    assert "approved" in fallback


def test_rejected_message_says_who_rejected_and_why() -> None:
    decision = DecisionView(
        status="rejected",
        decided_by="U0APPROVER",
        decided_at=DECIDED_AT,
        reason="wrong customer",
    )

    _, blocks = approval_decided(_view(), decision)

    line = _decision_text(blocks)
    assert "Rejected by <@U0APPROVER>" in line
    assert "wrong customer" in line


def test_rejected_without_reason_says_so() -> None:
    decision = DecisionView(status="rejected", decided_by="U0APPROVER", decided_at=DECIDED_AT)

    _, blocks = approval_decided(_view(), decision)

    assert "no reason given" in _decision_text(blocks)


def test_expired_message_says_nobody_decided() -> None:
    decision = DecisionView(status="expired", decided_by=None, decided_at=DECIDED_AT)

    _, blocks = approval_decided(_view(), decision)

    line = _decision_text(blocks)
    assert "Expired" in line
    assert "nobody decided" in line


def test_decided_message_keeps_the_call_and_its_outcome() -> None:
    decision = DecisionView(
        status="approved",
        decided_by="U0APPROVER",
        decided_at=DECIDED_AT,
        outcome="customer c-42 deleted",
    )

    _, blocks = approval_decided(_view(), decision)

    assert "c-42" in _arguments_text(blocks)
    assert "customer c-42 deleted" in _decision_text(blocks)


def test_decided_message_stays_within_limits_with_huge_reason_and_outcome() -> None:
    decision = DecisionView(
        status="rejected",
        decided_by="U0APPROVER",
        decided_at=DECIDED_AT,
        reason="r" * 100_000,
        outcome="o" * 100_000,
    )

    fallback, blocks = approval_decided(_view("y" * 1_000_000), decision)

    _assert_within_slack_limits(blocks)
    assert len(fallback) <= 3000


# reject_modal


def test_reject_modal_carries_the_approval_id_and_an_optional_reason() -> None:
    modal = reject_modal(APPROVAL_ID, "delete_customer")

    assert modal["type"] == "modal"
    assert modal["callback_id"] == REJECT_VIEW
    assert modal["private_metadata"] == APPROVAL_ID
    inputs = [b for b in modal["blocks"] if b["type"] == "input"]
    assert len(inputs) == 1
    assert inputs[0]["optional"] is True
    assert inputs[0]["element"]["type"] == "plain_text_input"
    assert inputs[0]["element"]["action_id"]
    assert inputs[0]["block_id"]


def test_reject_modal_with_a_huge_tool_name_stays_within_limits() -> None:
    modal = reject_modal(APPROVAL_ID, "t" * 10_000)

    _assert_within_slack_limits(modal["blocks"])
    assert len(modal["title"]["text"]) <= 24


# answers


@pytest.mark.parametrize("size", [1, 11_999, 12_000, 12_001, 150_000])
def test_answers_stay_within_slack_limits(size: int) -> None:
    messages = answers("a" * size)

    assert len(messages) == -(-size // 12_000)
    for text, blocks in messages:
        assert len(text) <= 3000
        assert [block["type"] for block in blocks] == ["markdown"]
        assert sum(len(block["text"]) for block in blocks) <= 12_000
    assert "".join(blocks[0]["text"] for _, blocks in messages) == "a" * size


def test_an_empty_answer_still_makes_a_valid_message() -> None:
    [(text, blocks)] = answers("")

    assert text
    assert blocks[0]["text"]


# truncate


def test_truncate_leaves_short_text_alone() -> None:
    assert truncate("hello", 5) == "hello"
    assert truncate("", 10) == ""


def test_truncate_cuts_to_the_limit_and_says_how_much_was_cut() -> None:
    result = truncate("x" * 1000, 100)

    kept = result.split("…")[0]
    assert len(result) == 100
    assert kept == "x" * len(kept)
    assert result.endswith(f"… ({1000 - len(kept)} more characters)")


@pytest.mark.parametrize(("size", "limit"), [(101, 100), (1000, 100), (10_000, 3000), (10**6, 50)])
def test_the_marker_counts_exactly_the_characters_removed(size: int, limit: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(size))

    result = truncate(text, limit)

    kept, marker = result.split("…")
    assert len(result) <= limit
    assert text.startswith(kept)
    assert marker == f" ({size - len(kept)} more characters)"


@pytest.mark.parametrize("arguments", ["`rm -rf /`", "`", "x`", "`x", "` ```` `"])
def test_an_argument_at_the_edge_of_the_code_block_cannot_join_its_fences(arguments: str) -> None:
    """```` followed by text would make the fence four backticks long and leave the block open."""
    _, blocks = approval_request(_view(arguments))

    body = _arguments_text(blocks).removeprefix("*Arguments*\n")
    assert body.startswith("```")
    assert body.endswith("```")
    assert body[3] != "`"
    assert body[-4] != "`"
    assert "``" not in body[3:-3]


def test_four_backticks_cannot_close_the_code_block() -> None:
    for arguments in ('{"a": "````"}', '{"a": "``````` then *bold* <https://x|Approve>"}'):
        _, blocks = approval_request(_view(arguments))
        body = _arguments_text(blocks).removeprefix("*Arguments*\n")
        assert body.startswith("```")
        assert body.endswith("```")
        assert "``" not in body[3:-3]


def test_truncate_never_exceeds_tiny_limits() -> None:
    assert len(truncate("x" * 100, 5)) <= 5


def _all_text(blocks: list[Block]) -> str:
    return "\n".join(text for block in blocks for text in _texts(block))


def test_a_pending_quorum_card_counts_the_approvals_and_keeps_its_buttons() -> None:
    _, blocks = approval_request(_view(approvals_needed=3, approved_by=["U0FIRST", "U0SECOND"]))
    text = _all_text(blocks)
    assert "3 approvals needed" in text
    assert "2 of 3 approvals: <@U0FIRST> and <@U0SECOND>" in text
    assert blocks[-1]["type"] == "actions"


def test_a_card_without_votes_shows_no_count() -> None:
    _, blocks = approval_request(_view())
    text = _all_text(blocks)
    assert "approvals needed" not in text
    assert "of 1 approvals" not in text


def test_a_decided_quorum_card_names_every_approver_in_order() -> None:
    decision = DecisionView(
        status="approved",
        decided_by="U0THIRD",
        decided_at=DECIDED_AT,
        approved_by=["U0FIRST", "U0SECOND", "U0THIRD"],
        approvals_needed=3,
    )
    _, blocks = approval_decided(_view(approvals_needed=3), decision)
    assert "Approved by <@U0FIRST>, <@U0SECOND> and <@U0THIRD>" in _all_text(blocks)


def test_an_approver_that_is_no_slack_id_is_shown_as_text() -> None:
    _, blocks = approval_request(_view(approvals_needed=2, approved_by=["<!channel>"]))
    text = _all_text(blocks)
    assert "1 of 2 approvals: &lt;!channel&gt;" in text
    assert "<!channel>" not in text

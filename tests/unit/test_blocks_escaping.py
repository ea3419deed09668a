"""Untrusted text in Block Kit: literal, within limits as Slack counts them, entities whole."""

import json
import re
from datetime import UTC, datetime

import pytest

from bot.slack.blocks import (
    EDIT_ACTION,
    ApprovalView,
    DecisionView,
    InFlightCall,
    answer,
    answers,
    approval_decided,
    approval_request,
    decision_line,
    escape,
    interrupted_note,
    mention,
    reject_modal,
    truncate,
)

HOSTILE = (
    "<!channel> <!here> <!everyone> <!subteam^S0EVIL> <@U0VICTIM> "
    "<https://evil.example/login|Log in> Tom & Jerry"
)
OURS = re.compile(r"<(@U0REQ|@U0LATER|@U0APPROVER|!subteam\^S0GROUP>|!date\^)")
ENTITY_RUN = re.compile(r"(?:&amp;|&lt;|&gt;|[^&])*")


def _strings(value: object) -> list[str]:
    """Every `text` a payload carries, at any depth."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "text" and isinstance(v, str)]
        return found + [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def assert_only_our_markup(texts: list[str]) -> None:
    for text in texts:
        for match in re.finditer("<", text):
            assert OURS.match(text, match.start()), text
        assert ENTITY_RUN.fullmatch(text), text


def _view(**overrides: object) -> ApprovalView:
    fields: dict[str, object] = {
        "approval_id": "ap_0123456789abcdef",
        "tool_name": "delete_customer",
        "arguments": json.dumps({"customer_id": HOSTILE}),
        "requesters": ["U0REQ", "U0LATER"],
        "approvers": ["U0APPROVER", "S0GROUP"],
    }
    fields.update(overrides)
    return ApprovalView(**fields)  # type: ignore[arg-type]


def test_escape_turns_every_kind_of_ping_and_link_into_text() -> None:
    assert escape(HOSTILE) == (
        "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;!subteam^S0EVIL&gt; "
        "&lt;@U0VICTIM&gt; &lt;https://evil.example/login|Log in&gt; Tom &amp; Jerry"
    )


@pytest.mark.parametrize("text", ["&" * 1000, "<>" * 500, "a&" * 700, "x" * 99 + "&" * 10])
@pytest.mark.parametrize("limit", [40, 100, 101, 102, 103, 104])
def test_escaped_text_fits_the_limit_and_never_ends_in_half_an_entity(
    text: str, limit: int
) -> None:
    result = escape(text, limit)

    assert len(result) <= limit
    kept, _, marker = result.partition("…")
    assert ENTITY_RUN.fullmatch(kept)
    shown = len(re.sub("&(amp|lt|gt);", "_", kept))
    assert marker == f" ({len(text) - shown} more characters)"


def test_text_that_fits_once_escaped_is_kept_whole() -> None:
    assert escape("&" * 20, 100) == "&amp;" * 20
    assert "more characters" in escape("&" * 21, 100)


def test_truncate_never_cuts_an_entity_or_one_of_our_mentions_in_half() -> None:
    for cut_at in range(60, 80):
        text = "a" * cut_at + "&amp; <@U0APPROVER> &lt;" + "b" * 200
        result = truncate(text, 100)
        assert len(result) <= 100
        assert_only_our_markup([result])
        assert re.search(r"<[^>]*$", result) is None


def test_a_card_shows_hostile_arguments_and_tool_names_as_text() -> None:
    fallback, blocks = approval_request(_view(tool_name=HOSTILE))

    texts = [fallback, *_strings(blocks)]
    assert_only_our_markup(texts)
    assert "&lt;!channel&gt;" in json.dumps(blocks)
    assert "Asked by <@U0REQ>, <@U0LATER>" in json.dumps(blocks)


def test_a_decided_card_shows_the_reason_and_the_outcome_as_text() -> None:
    decided_at = datetime(2025, 1, 2, tzinfo=UTC)
    for decision in (
        DecisionView("rejected", "U0APPROVER", decided_at, reason=HOSTILE),
        DecisionView("approved", "U0APPROVER", decided_at, outcome=HOSTILE),
    ):
        fallback, blocks = approval_decided(_view(), decision)
        assert_only_our_markup([fallback, *_strings(blocks), decision_line(decision)])
        assert "by <@U0APPROVER>" in _strings(blocks)[-1]


def test_huge_hostile_reasons_and_outcomes_stay_within_limits() -> None:
    decision = DecisionView(
        "rejected", "U0APPROVER", datetime(2025, 1, 2, tzinfo=UTC), reason="<" * 5000
    )
    _, blocks = approval_decided(_view(arguments="&" * 10_000), decision)

    texts = _strings(blocks)
    assert all(len(t) <= 3000 for t in texts)
    assert_only_our_markup(texts)


def test_an_answer_is_escaped_and_its_messages_never_split_an_entity() -> None:
    text = "&<>" * 5_000

    messages = answers(text)

    assert answer(text) == messages[0]
    for fallback, blocks in messages:
        assert_only_our_markup([fallback, *_strings(blocks)])
        assert len(fallback) <= 3000
        assert sum(len(t) for t in _strings(blocks)) <= 12_000
    assert "".join(t for _, blocks in messages for t in _strings(blocks)) == escape(text)


def test_a_huge_answer_arrives_in_as_many_messages_as_it_takes() -> None:
    messages = answers("&" * 100_000)

    assert len(messages) == 42
    for fallback, blocks in messages:
        assert_only_our_markup([fallback, *_strings(blocks)])


def test_the_interrupted_note_shows_tool_names_and_arguments_as_text() -> None:
    text, blocks = interrupted_note(
        run_id="run_1",
        what="Stopped.",
        in_flight=[InFlightCall(tool_name=HOSTILE, arguments=json.dumps({"a": HOSTILE}))],
        ref="E1",
        can_retry=True,
    )

    assert_only_our_markup([text, *_strings(blocks)])


def test_the_reject_modal_shows_the_tool_name_as_text() -> None:
    assert_only_our_markup(_strings(reject_modal("ap_1", HOSTILE)["blocks"]))


def test_only_a_slack_id_becomes_a_mention() -> None:
    assert mention("U0APPROVER") == "<@U0APPROVER>"
    assert mention("S0GROUP") == "<!subteam^S0GROUP>"
    assert mention("U1> <!channel") == "U1&gt; &lt;!channel"


def test_an_edited_card_shows_both_argument_sets_escaped_and_offers_edit() -> None:
    view = ApprovalView(
        approval_id="ap_1",
        tool_name="refund",
        arguments='{"note": "<!channel>"}',
        requesters=["U1"],
        approvers=["U2"],
        allow_edit=True,
        edited_arguments='{"note": "<@U9> ```x``` ' + "y" * 5000 + '"}',
    )
    _text, body = approval_request(view)
    sections = [b["text"]["text"] for b in body if b["type"] == "section"]
    assert any("&lt;!channel&gt;" in s and "model asked for" in s for s in sections)
    [edited] = [s for s in sections if "edited by an approver" in s]
    assert "&lt;@U9&gt;" in edited
    assert "<@U9>" not in edited
    assert len(edited) <= 3000
    assert edited.endswith("```")
    [actions] = [b for b in body if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]][-1] == EDIT_ACTION

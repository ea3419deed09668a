"""The feedback buttons under an answer: Slack's shape, accepted by the fake Web API as Slack
would, and a clicked value read back only when it is exactly one we send."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.feedback import (
    FEEDBACK_ACTION,
    FeedbackChoice,
    feedback_block,
    read_feedback_value,
)
from storage.ids import new_run_id
from storage.models import FeedbackValue
from tests.fakes.slack_api import FakeSlackAPI


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


def test_the_block_is_slacks_context_actions_with_feedback_buttons() -> None:
    run_id = new_run_id()

    block = feedback_block(run_id)

    assert block["type"] == "context_actions"
    [buttons] = block["elements"]
    assert buttons["type"] == "feedback_buttons"
    assert buttons["action_id"] == FEEDBACK_ACTION
    positive, negative = buttons["positive_button"], buttons["negative_button"]
    assert positive["text"]["type"] == negative["text"]["type"] == "plain_text"
    assert read_feedback_value(positive["value"]) == FeedbackChoice(run_id, FeedbackValue.POSITIVE)
    assert read_feedback_value(negative["value"]) == FeedbackChoice(run_id, FeedbackValue.NEGATIVE)


@pytest.mark.parametrize("ref", ["", "ap_abcdefgh", "run_123", "run_" + "g" * 32, "<!channel>"])
def test_only_a_run_id_can_be_an_answer_ref(ref: str) -> None:
    with pytest.raises(ValueError, match="run id"):
        feedback_block(ref)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "positive",
        "positive:",
        "neutral:run_" + "0" * 32,
        "positive:run_" + "0" * 31,
        "positive:run_" + "0" * 32 + "\n",
        " positive:run_" + "0" * 32,
        "POSITIVE:run_" + "0" * 32,
        "positive:ap_" + "0" * 32,
        "positive:run_" + "0" * 32 + ":extra",
    ],
)
def test_a_value_we_never_send_is_no_choice(value: Any) -> None:
    assert read_feedback_value(value) is None


async def test_the_fake_web_api_takes_the_block_under_an_answer(slack: FakeSlackAPI) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "The answer."}},
        feedback_block(new_run_id()),
    ]

    response = await client.chat_postMessage(channel="C1", text="The answer.", blocks=blocks)

    assert response["ok"]


def _with(**changes: Any) -> dict[str, Any]:
    block = feedback_block(new_run_id())
    block["elements"][0]["positive_button"].update(changes)
    return block


@pytest.mark.parametrize(
    "block",
    [
        {"type": "context_actions", "elements": []},
        {"type": "context_actions", "elements": [{"type": "button", "value": "x"}]},
        {"type": "context_actions", "elements": [feedback_block(new_run_id())["elements"][0]] * 6},
        _with(value="v" * 2001),
        _with(value=""),
        _with(text={"type": "mrkdwn", "text": "good"}),
        _with(text={"type": "plain_text", "text": "x" * 76}),
    ],
)
async def test_the_fake_web_api_refuses_what_slack_would(
    slack: FakeSlackAPI, block: dict[str, Any]
) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)

    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C1", text="x", blocks=[block])

    assert refused.value.response["error"] == "invalid_blocks"

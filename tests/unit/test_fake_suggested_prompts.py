"""The fake's assistant.threads.setSuggestedPrompts keeps Slack's rules, through slack_sdk."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlackAPI

PROMPT = {"title": "Summarize", "message": "Summarize this thread"}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


async def test_one_to_four_prompts_are_set_and_recorded(slack: FakeSlackAPI) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)

    await client.assistant_threads_setSuggestedPrompts(channel_id="D1", prompts=[PROMPT])
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D1", thread_ts="1.0", prompts=[PROMPT] * 4, title="Try"
    )

    first, second = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert first.args == {"channel_id": "D1", "prompts": [PROMPT]}
    assert second.args["thread_ts"] == "1.0"
    assert second.args["title"] == "Try"


@pytest.mark.parametrize(
    "prompts",
    [
        [],
        [PROMPT] * 5,
        [{"title": "no message"}],
        [{"message": "no title"}],
        [{"title": "", "message": "empty title"}],
        ["just text"],
    ],
)
async def test_what_slack_refuses_is_refused(slack: FakeSlackAPI, prompts: list[Any]) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)

    with pytest.raises(SlackApiError) as refused:
        await client.assistant_threads_setSuggestedPrompts(channel_id="D1", prompts=prompts)

    assert refused.value.response["error"] == "invalid_arguments"

"""A run that reaches its limit or whose model fails says so plainly, and loses nothing."""

import json
import logging
from collections import Counter
from typing import Any

import pytest

from bot.config import AgentConfig
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import approval_config, approval_ids, texts
from tests.integration.test_approvals import THREAD_TS, ask, click
from tests.running_app import bot_settings, running_bot


def _config(max_turns: int) -> Any:
    config = approval_config()
    return config.model_copy(update={"agent": AgentConfig(max_turns=max_turns)})


def _cards(slack: FakeSlackAPI) -> list[str]:
    return [i for c in slack.calls_to("chat.postMessage") for i in approval_ids(c)]


def _item_keys(request: dict[str, Any]) -> list[str]:
    """Each input item's identity: a call and its output share a call id, so the kind counts."""
    keys = []
    for item in request.get("input") or []:
        if not isinstance(item, dict):
            continue
        ident = item.get("call_id") or item.get("id")
        if ident:
            keys.append(f"{item.get('type')}:{ident}")
    return keys


async def test_max_turns_holds_across_pauses_and_a_reply_goes_on_from_there(
    database_url: str, slack: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeModelServer() as server:
        for n in range(3):
            server.reply_tool_calls(("delete_customer", {"customer_id": f"c{n}"}))
        server.reply_text("Carrying on.")
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(
            database_url=database_url, slack=slack, settings=settings, config=_config(2)
        ) as bot:
            with caplog.at_level(logging.INFO):
                await ask(bot)
                await click(bot, _cards(slack)[-1])
                await click(bot, _cards(slack)[-1])
            assert len(server.requests) == 2  # a third turn would be past the limit
            notes = texts(slack.calls_to("chat.postMessage"))
            assert any("stopped after 2 steps, the limit set for this agent" in t for t in notes)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            for request in server.requests:
                keys = _item_keys(request)
                assert [k for k, n in Counter(keys).items() if n > 1] == []

            await bot.send(
                bot.requests.mention(text="go on", ts="1700000009.000100", thread_ts=THREAD_TS)
            )
            await bot.settle()
        seen = json.dumps(server.requests[-1]["input"])
        assert "c0" in seen
        assert "c1" in seen
        assert "go on" in seen


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (400, "The model refused the request."),
        (500, "The model failed to answer."),
    ],
)
async def test_a_model_failure_is_named_with_a_reference_and_is_not_an_error_line(
    database_url: str,
    slack: FakeSlackAPI,
    caplog: pytest.LogCaptureFixture,
    status: int,
    said: str,
) -> None:
    async with FakeModelServer() as server:
        server.fail(status, times=10, retry_after_ms=1)
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(
            database_url=database_url, slack=slack, settings=settings, config=_config(5)
        ) as bot:
            with caplog.at_level(logging.INFO):
                await ask(bot)
    [note] = texts(slack.calls_to("chat.postMessage"))
    assert said in note
    assert "Reference:" in note
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

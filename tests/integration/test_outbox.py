"""What the bot owes a thread reaches it once, whichever process dies when.

A real `python -m bot` is killed at the two points between the commit of a state change and
Slack's answer to the post it owes: before Slack took the post, and after Slack took it but
before the bot heard back. A second process then delivers what is owed, exactly once.
"""

import asyncio
from pathlib import Path

import pytest
from agents.testing import ScriptedModel, assistant_message
from sqlmodel import select

from bot.runtime.outbox import QUICK_RETRIES
from bot.slack.blocks import APPROVE_ACTION
from storage.models import OutboxMessage, OutboxStatus
from storage.outbox import FIRST_PAUSE
from tests.bot_process import bot_process
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import APPROVER, CHANNEL, approval_ids, approval_messages, texts
from tests.running_app import SIGNING_SECRET, running_bot


@pytest.mark.parametrize("slack_took_it", [False, True], ids=["before-slack", "after-slack"])
async def test_an_answer_owed_when_the_process_dies_is_posted_once(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path, slack_took_it: bool
) -> None:
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_text("The first answer.")
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            slack.hang("chat.postMessage", accept=slack_took_it)
            await bot.send(requests.mention(text="first", channel=CHANNEL, ts="3.5"))
            await slack.wait_for_faults(1)
            bot.process.kill()
            await bot.process.wait()
        model.reply_text("The second answer.")
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            await slack.wait_for(
                "chat.postMessage", where=lambda c: c.args.get("text") == "The first answer."
            )
            # Posts in a thread go out in order: the second answer follows the first.
            reply = requests.channel_message(
                text="second", channel=CHANNEL, ts="3.7", thread_ts="3.5"
            )
            assert await bot.send(reply) == 200
            await slack.wait_for(
                "chat.postMessage", where=lambda c: c.args.get("text") == "The second answer."
            )
    assert texts(slack.messages_in_thread(CHANNEL, "3.5")) == [
        "The first answer.",
        "The second answer.",
    ]


@pytest.mark.parametrize("slack_took_it", [False, True], ids=["before-slack", "after-slack"])
async def test_a_card_owed_when_the_process_dies_is_posted_once_and_decides(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path, slack_took_it: bool
) -> None:
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c9"}))
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            slack.hang("chat.postMessage", accept=slack_took_it)
            await bot.send(requests.mention(text="delete c9", channel=CHANNEL, ts="4.5"))
            await slack.wait_for_faults(1)
            bot.process.kill()
            await bot.process.wait()
        model.reply_text("c9 is gone.")
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            [card] = await slack.wait_for("chat.postMessage", where=lambda c: bool(approval_ids(c)))
            [approval_id] = approval_ids(card)
            click = requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="4.6",
                thread_ts="4.5",
            )
            assert await bot.send(click) == 200
            await slack.wait_for(
                "chat.postMessage", where=lambda c: c.args.get("text") == "c9 is gone."
            )
    assert len(approval_messages(slack)) == 1
    assert (tmp_path / "tool.log").read_text().splitlines() == ["delete_customer:c9"]


async def test_an_answer_slack_keeps_refusing_is_posted_by_a_later_sweep_once(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Worth the wait.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        # More 5xx answers than one delivery's quick retries: the message waits for the sweep.
        slack.fail("chat.postMessage", status=500, times=1 + len(QUICK_RETRIES))
        await bot.send(bot.requests.mention(text="hello", channel=CHANNEL, ts="5.5"))
        await bot.settle()
        assert not slack.messages_in_thread(CHANNEL, "5.5")
        async with bot.app.db.read() as session:
            [row] = (await session.scalars(select(OutboxMessage))).all()
        assert row.status == OutboxStatus.PENDING
        await asyncio.sleep(FIRST_PAUSE)  # the pause before the next attempt
        assert await bot.app.outbox.sweep() == 1
        assert texts(slack.messages_in_thread(CHANNEL, "5.5")) == ["Worth the wait."]
        # It might have reached Slack before: the sweep looked first.
        assert slack.calls_to("conversations.replies")
        async with bot.app.db.read() as session:
            [row] = (await session.scalars(select(OutboxMessage))).all()
        assert row.status == OutboxStatus.DELIVERED
        assert row.payload is None

"""Socket Mode end to end: the bot connects to the fake's WebSocket with the app-level token,
takes mentions, clicks, modals and the command as envelopes, acks them, and survives Slack
asking it to reconnect without losing or doubling anything."""

import asyncio
import json
from collections import Counter
from typing import Any

import aiohttp
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

from bot.slack.blocks import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION, REJECT_VIEW
from bot.slack.listeners.commands import COMMAND
from storage.database import Database
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.row_counts import row_counts
from tests.running_app import RunningBot, running_bot

THREAD_TS = "1700000001.000100"
CARD_TS = "1700000002.000100"


def delete_then_answer(answer: str) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message(answer)],
        ]
    )


def tool_outputs(model: ScriptedModel) -> list[str]:
    last = model.last_call
    assert last is not None
    return [
        str(item["output"])
        for item in last.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


async def mention(bot: RunningBot, text: str = "please delete customer c42") -> None:
    ack = await bot.deliver(
        bot.requests.mention(text=text, user=ASKER, channel=CHANNEL, ts=THREAD_TS)
    )
    assert ack.payload is None
    await bot.settle()


def click(bot: RunningBot, approval_id: str, action: str = APPROVE_ACTION) -> Any:
    return bot.requests.block_actions(
        user=APPROVER,
        action_id=action,
        value=approval_id,
        channel=CHANNEL,
        message_ts=CARD_TS,
        thread_ts=THREAD_TS,
        trigger_id="trigger-1",
    )


async def test_a_mention_is_answered_and_only_healthz_is_served_over_http(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Hello over the socket.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model, socket=True) as bot:
        [opened] = slack.calls_to("apps.connections.open")
        assert opened.token == slack.app_token
        [(_, hello)] = slack.socket.sent
        assert hello["type"] == "hello"
        await mention(bot, "hi")
        [answer] = slack.messages_in_thread(CHANNEL, THREAD_TS)
        assert answer.args["text"] == "Hello over the socket."
        assert answer.token == slack.bot_token
        async with bot.http.get(bot.url + "/healthz") as health:
            assert health.status == 200
            assert (await health.json())["ok"] is True
        async with bot.http.post(bot.url + "/slack/events", data=b"{}") as events:
            assert events.status in (404, 405)


async def test_a_click_approves_once_and_the_tool_runs_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("Customer c42 is gone.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model, socket=True
    ) as bot:
        await mention(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        first = await bot.deliver(click(bot, approval_id))
        assert first.payload is None
        await bot.settle()
        await bot.deliver(click(bot, approval_id))  # a second click on the same card
        await bot.settle()
        assert executions == Counter({"delete_customer:c42": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Customer c42 is gone."
        assert f"Approved by <@{APPROVER}>" in json.dumps(slack.calls_to("chat.update")[0].args)
        model.assert_complete()


async def test_reject_opens_the_modal_and_its_reason_reaches_the_model(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("OK, I won't delete it.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model, socket=True
    ) as bot:
        await mention(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await bot.deliver(click(bot, approval_id, REJECT_ACTION))
        await bot.settle()
        [modal] = slack.calls_to("views.open")
        assert modal.args["trigger_id"] == "trigger-1"
        assert modal.args["view"]["callback_id"] == REJECT_VIEW
        reason = "Customer c42 has an open invoice — keep them."
        submission = bot.requests.view_submission(
            user=APPROVER,
            callback_id=REJECT_VIEW,
            private_metadata=approval_id,
            values={REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}},
        )
        envelope_id = await slack.socket.deliver(submission)
        [delivered] = slack.socket.deliveries(envelope_id)
        assert delivered["type"] == "interactive"
        assert delivered["accepts_response_payload"] is True
        ack = await slack.socket.wait_ack(envelope_id)
        assert ack.payload is None  # the modal closes
        await bot.settle()
        assert not executions
        assert tool_outputs(model) == [reason]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "OK, I won't delete it."


async def test_the_command_answers_privately_in_its_ack(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), socket=True
    ) as bot:
        envelope_id = await slack.socket.deliver(
            bot.requests.slash_command(command=COMMAND, user=ASKER, channel=CHANNEL)
        )
        [delivered] = slack.socket.deliveries(envelope_id)
        assert delivered["type"] == "slash_commands"
        assert delivered["payload"]["command"] == COMMAND
        ack = await slack.socket.wait_ack(envelope_id)
        assert ack.payload is not None
        assert "delete_customer" in ack.payload["text"]
        assert ack.payload.get("response_type", "ephemeral") == "ephemeral"
        assert not slack.calls_to("chat.postMessage")


def released_call(started: asyncio.Event, release: asyncio.Event) -> ModelStep:
    async def respond(_call: ModelCall) -> Any:
        started.set()
        await release.wait()
        return [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")]

    return ModelStep.respond(respond)


async def runs(db: Database) -> int:
    return (await row_counts(db))["runs"]


async def test_a_forced_reconnect_neither_loses_nor_doubles_an_event(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    model = ScriptedModel(
        [released_call(started, release), [assistant_message("Customer c42 is gone.")]]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model, socket=True
    ) as bot:
        # The mention's ack is lost and Slack asks for a new connection while its run is in
        # flight: Slack delivers it again on the new connection, and the bot takes it once.
        slack.socket.lose_acks(1)
        envelope_id = await slack.socket.deliver(
            bot.requests.mention(text="delete c42", user=ASKER, channel=CHANNEL, ts=THREAD_TS)
        )
        await slack.socket.wait_lost_acks(1)
        await started.wait()
        await slack.socket.disconnect("refresh_requested")
        await slack.socket.wait_connected(2)
        redelivered = await slack.socket.wait_ack(envelope_id)
        assert redelivered.connection == 2
        first, again = slack.socket.deliveries(envelope_id)
        assert (first["retry_attempt"], again["retry_attempt"]) == (0, 1)
        assert again["retry_reason"] == "timeout"
        assert again["payload"] == first["payload"]
        release.set()
        await bot.settle()
        [card] = approval_messages(slack)
        [approval_id] = approval_ids(card)

        # A click whose ack is lost under a `warning` disconnect is not sent again (Slack
        # retries only events); the person clicks again on the new connection.
        slack.socket.lose_acks(1)
        lost_click = await slack.socket.deliver(click(bot, approval_id))
        await slack.socket.wait_lost_acks(2)
        await slack.socket.disconnect("warning")
        await slack.socket.wait_connected(3)
        await bot.deliver(click(bot, approval_id))
        await bot.settle()
        assert len(slack.socket.deliveries(lost_click)) == 1

        assert executions == Counter({"delete_customer:c42": 1})
        answers = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))
        assert answers.count("Customer c42 is gone.") == 1
        assert len(approval_messages(slack)) == 1
        assert await runs(bot.app.db) == 1
        model.assert_complete()


async def test_an_event_sent_while_the_bot_reconnects_waits_for_the_new_connection(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Answered after the reconnect.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model, socket=True) as bot:
        await slack.socket.disconnect("refresh_requested")
        envelope_id = await slack.socket.deliver(
            bot.requests.mention(text="are you there?", channel=CHANNEL, ts=THREAD_TS)
        )
        ack = await slack.socket.wait_ack(envelope_id)
        await bot.settle()
        assert ack.connection == 2
        assert len(slack.socket.deliveries(envelope_id)) == 1
        [answer] = slack.messages_in_thread(CHANNEL, THREAD_TS)
        assert answer.args["text"] == "Answered after the reconnect."


async def test_healthz_answers_before_the_first_envelope(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with (
        running_bot(database_url=database_url, slack=slack, socket=True) as bot,
        aiohttp.ClientSession() as http,
        http.get(bot.url + "/healthz") as health,
    ):
        assert health.status == 200
        assert slack.socket.open_connections == 1

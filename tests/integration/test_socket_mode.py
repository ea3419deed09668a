"""Socket Mode end to end: the bot connects to the fake's WebSocket with the app-level token,
takes mentions, clicks, modals and the command as envelopes, acks them, and survives Slack
asking it to reconnect without losing or doubling anything."""

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from sqlalchemy import select
from sqlmodel import col

from bot.slack.blocks import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION, REJECT_VIEW
from bot.slack.listeners.commands import COMMAND
from storage.database import Database
from storage.models import Job, JobKind
from tests.bot_process import ROOT, bot_process
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import JSON, SlackRequestBuilder
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
from tests.running_app import SIGNING_SECRET, RunningBot, running_bot

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
            bot.requests.slash_command(command=COMMAND, text="policy", user=ASKER, channel=CHANNEL)
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


async def message_jobs(db: Database) -> int:
    """The person's messages the bot queued work for."""
    async with db.read() as session:
        jobs = await session.scalars(select(Job).where(col(Job.kind) == JobKind.MESSAGE))
        return len(jobs.all())


def mentions_seen(model: ScriptedModel, text: str) -> int:
    """How often the person's message is in what the model was given last."""
    last = model.last_call
    assert last is not None
    return sum(text in json.dumps(item) for item in last.input if isinstance(item, dict))


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
        assert await message_jobs(bot.app.db) == 1
        assert (await row_counts(bot.app.db))["runs"] == 1
        assert mentions_seen(model, "delete c42") == 1
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


async def test_each_envelope_is_a_request_in_flight_until_its_ack(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """So a thread's worker lets the ack go first, as over HTTP (see bot/runtime/ack_first)."""
    seen: list[int] = []
    async with running_bot(database_url=database_url, slack=slack, socket=True) as bot:

        @bot.app.bolt.command("/probe")
        async def probe(ack: Any) -> None:
            seen.append(bot.app.ack_first.in_flight)
            await ack()

        await bot.deliver(bot.requests.slash_command(command="/probe"))
        assert seen == [1]
        assert bot.app.ack_first.in_flight == 0


async def test_python_m_bot_serves_socket_mode_and_stops_cleanly(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_text("Hello from the socket process.")
        async with bot_process(
            database_url, slack, model, tmp_path, SLACK_APP_TOKEN=slack.app_token
        ) as bot:
            await slack.socket.wait_connected(1)
            async with (
                aiohttp.ClientSession() as http,
                http.get(bot.url + "/healthz") as health,
            ):
                assert health.status == 200
            requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
            await slack.socket.send_and_ack(requests.mention(text="hi", channel=CHANNEL, ts="3.5"))
            [answer] = await slack.wait_for("chat.postMessage")
            assert answer.args["text"] == "Hello from the socket process."
            bot.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
        assert slack.socket.open_connections == 0
        log = "".join(bot.log)
        assert "connected to Slack in Socket Mode" in log
        for secret in (slack.app_token, slack.bot_token, SIGNING_SECRET, "sk-test-key"):
            assert secret not in log
        assert not [line for line in bot.log if " WARNING " in line or " ERROR " in line]


async def test_an_app_level_token_slack_refuses_ends_start_up_with_a_clear_line(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    revoked = "xapp-1-A0APP-1-revoked"
    async with (
        FakeModelServer() as model,
        bot_process(database_url, slack, model, tmp_path, SLACK_APP_TOKEN=revoked) as bot,
    ):
        assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 1
    log = "".join(bot.log)
    assert "Slack refused the app-level token (invalid_auth): check SLACK_APP_TOKEN" in log
    assert "Traceback" not in log
    assert revoked not in log


async def test_slacks_own_socket_mode_mention_is_answered(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """The envelope payload slack_sdk's Socket Mode tests replay, read from the shared copy."""
    path = (
        ROOT.parent
        / "shared"
        / "real_payloads"
        / "event-app_mention__sdk-mock_socket_mode_server-L15.json"
    )
    body = json.loads(path.read_text(encoding="utf-8"))["body"]
    event = body["event"]
    model = ScriptedModel([[assistant_message("Hello, real payload.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model, socket=True) as bot:
        await bot.deliver(bot.requests.raw(json.dumps(body).encode(), JSON))
        await bot.settle()
        [answer] = slack.messages_in_thread(event["channel"], event["ts"])
        assert answer.args["text"] == "Hello, real payload."

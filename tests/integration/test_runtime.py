"""Acks before work, draining on shutdown, the built-in tools, the model APIs, history limits."""

import asyncio
import json
from collections import Counter

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.config import AgentConfig, ApprovalsConfig, Config, ToolsConfig
from bot.slack.blocks import APPROVE_ACTION
from storage.database import Database
from storage.models import Run, RunStatus
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    CHANNEL,
    approval_ids,
    approval_messages,
    blocked_until,
    texts,
)
from tests.running_app import bot_settings, running_bot


async def _runs(db: Database) -> list[Run]:
    from sqlmodel import select

    async with db.read() as session:
        return list((await session.scalars(select(Run))).all())


async def test_slack_gets_its_ack_before_the_agent_works(
    database_url: str, slack: FakeSlackAPI
) -> None:
    release = asyncio.Event()
    model = ScriptedModel([blocked_until(release, "finally")])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        status, _ = await asyncio.wait_for(
            bot.send(bot.requests.mention(text="slow one", ts="7.1")), timeout=3
        )
        assert status == 200
        assert not slack.calls_to("chat.postMessage")  # the model is still thinking
        release.set()
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["finally"]


async def test_shutdown_lets_running_work_finish(database_url: str, slack: FakeSlackAPI) -> None:
    release, started = asyncio.Event(), asyncio.Event()
    model = ScriptedModel([blocked_until(release, "made it", started)])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="hi", ts="7.2"))
        await started.wait()
        stopping = asyncio.create_task(bot.app.stop(drain_timeout=10))
        await asyncio.sleep(0)
        status, _ = await bot.send(bot.requests.mention(text="too late", ts="7.3"))
        release.set()
        assert await stopping is True
    assert status == 503
    assert texts(slack.calls_to("chat.postMessage")) == ["made it"]


async def test_shutdown_records_where_unfinished_work_stopped(
    database_url: str, slack: FakeSlackAPI
) -> None:
    never, started = asyncio.Event(), asyncio.Event()
    model = ScriptedModel([blocked_until(never, "never", started)])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="hi", ts="7.4"))
        await started.wait()
        db = Database(bot.app.settings.database_url)
        assert await bot.app.stop(drain_timeout=0.2) is False
        [note] = texts(slack.calls_to("chat.postMessage"))
        assert "stopped" in note
        [run] = await _runs(db)
        assert run.status == RunStatus.INTERRUPTED
        assert run.error_ref is not None
        assert run.error_ref in note
        await db.dispose()


async def test_builtin_slack_post_message_needs_approval_then_posts(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [
            [
                function_call(
                    "slack_post_message",
                    {"channel": "C0ANNOUNCE", "text": "Release is out"},
                    call_id="call_1",
                )
            ],
            [assistant_message("Announced.")],
        ]
    )
    config = Config(
        tools=ToolsConfig(builtins=["slack_post_message", "slack_lookup_user"]),
        approvals=ApprovalsConfig(approvers=[APPROVER]),
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await bot.send(bot.requests.mention(text="announce", channel=CHANNEL, ts="8.1"))
        await bot.settle()
        assert not [
            c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == "C0ANNOUNCE"
        ]
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await bot.send(
            bot.requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="8.2",
                thread_ts="8.1",
            )
        )
        await bot.settle()
        [posted] = [
            c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == "C0ANNOUNCE"
        ]
        assert posted.args["text"] == "Release is out"
        assert texts(slack.messages_in_thread(CHANNEL, "8.1"))[-1] == "Announced."


async def test_builtin_slack_lookup_user_runs_without_approval(
    database_url: str, slack: FakeSlackAPI
) -> None:
    slack.users["U0BOB"] = {
        "id": "U0BOB",
        "name": "bob",
        "tz": "Europe/Paris",
        "profile": {"real_name": "Bob Builder", "title": "Engineer"},
    }
    model = ScriptedModel(
        [
            [function_call("slack_lookup_user", {"user_id": "U0BOB"}, call_id="call_1")],
            [assistant_message("Bob is an engineer.")],
        ]
    )
    config = Config(
        tools=ToolsConfig(builtins=["slack_lookup_user"]),
        approvals=ApprovalsConfig(approvers=[APPROVER]),
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await bot.send(bot.requests.mention(text="who is bob", ts="8.5"))
        await bot.settle()
        assert not approval_messages(slack)
        assert slack.calls_to("users.info")
        last = model.last_call
        assert last is not None
        assert "Bob Builder" in json.dumps(last.input)


async def test_the_chat_completions_api_can_be_chosen(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with FakeModelServer() as server:
        server.reply_text("Answered over Chat Completions.")
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        config = Config(agent=AgentConfig(api="chat_completions", model="gpt-test"))
        async with running_bot(
            database_url=database_url, slack=slack, config=config, settings=settings
        ) as bot:
            await bot.send(bot.requests.mention(text="hi", ts="9.1"))
            await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["Answered over Chat Completions."]
        [request] = server.requests
        assert "messages" in request
        assert request["model"] == "gpt-test"


async def test_the_responses_api_is_the_default(database_url: str, slack: FakeSlackAPI) -> None:
    async with FakeModelServer() as server:
        server.reply_text("Answered over Responses.")
        settings = bot_settings(database_url, slack, openai_base_url=server.base_url)
        async with running_bot(database_url=database_url, slack=slack, settings=settings) as bot:
            await bot.send(bot.requests.mention(text="hi", ts="9.2"))
            await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["Answered over Responses."]
        [request] = server.requests
        assert "input" in request


async def test_the_history_limit_caps_what_the_agent_sees(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message(f"answer {i}")] for i in range(4)])
    config = Config(agent=AgentConfig(history_limit=2))
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        for i in range(4):
            await bot.send(
                bot.requests.mention(
                    text=f"message {i}", ts=f"10.{i}", thread_ts="10.0" if i else None
                )
            )
            await bot.settle()
    last = model.last_call
    assert last is not None
    seen = json.dumps(last.input)
    assert "message 3" in seen
    assert "answer 2" in seen
    assert "message 0" not in seen
    assert Counter(type(item).__name__ for item in last.input)["dict"] <= 3


async def test_a_thread_starts_its_run_only_once_requests_in_flight_have_their_acks(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("after the acks")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        acks = bot.app.ack_first
        acks.max_wait = 30
        held = asyncio.Event()
        wait_quiet = acks.wait_quiet

        async def observed_wait() -> None:
            held.set()
            await wait_quiet()

        acks.wait_quiet = observed_wait  # type: ignore[method-assign]
        with acks.request():  # another Slack request, still being handled
            status, _ = await bot.send(bot.requests.mention(text="hi", ts="7.7"))
            assert status == 200
            await asyncio.wait_for(held.wait(), timeout=10)
            assert model.calls == ()
        await bot.settle()
        assert texts(slack.calls_to("chat.postMessage")) == ["after the acks"]

"""MCP servers under the same approvals: a real MCP server from the test kit (the `mcp`
package's own `MCPServer`), over stdio and over Streamable HTTP on 127.0.0.1, driven by signed
clicks over HTTP and a scripted model."""

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agents import RunContextWrapper
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlmodel import select

from bot.agent.runs import CallDecision
from bot.config import Config, ConfigError, McpServerConfig, ToolsConfig
from bot.slack.blocks import APPROVE_ACTION, APPROVE_THREAD_ACTION, REJECT_ACTION
from storage.ids import ThreadRef
from storage.models import Run
from tests.bot_process import ROOT, bot_process
from tests.fakes.mcp_servers import ServerLog, free_port, http_server, stdio_command
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import (
    APPROVER,
    CHANNEL,
    GROUP_MEMBER,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.integration.test_approvals import THREAD_TS, ask, click, reject_with, tool_outputs
from tests.integration.test_edit import submit_edit
from tests.integration.test_thread_approvals import say
from tests.integration.test_threadgate_command import answer_text
from tests.running_app import SIGNING_SECRET, RunningBot, bot_settings, running_bot

TOKEN = "mcp-test-token"
ServerFactory = Callable[..., AbstractAsyncContextManager[dict[str, Any]]]


@pytest.fixture
def server_log(tmp_path: Path) -> ServerLog:
    return ServerLog(tmp_path / "mcp.log")


@asynccontextmanager
async def stdio(log: ServerLog, **options: Any) -> AsyncIterator[dict[str, Any]]:
    """A stdio server is started by the bot itself: only its config is needed."""
    yield {"command": stdio_command(log, **options)}


@asynccontextmanager
async def http(log: ServerLog, **options: Any) -> AsyncIterator[dict[str, Any]]:
    async with http_server(log, token=TOKEN, **options) as url:
        yield {"url": url, "headers": {"Authorization": "Bearer ${TG_TEST_MCP_TOKEN}"}}


@pytest.fixture(params=["stdio", "http"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ServerFactory:
    monkeypatch.setenv("TG_TEST_MCP_TOKEN", TOKEN)
    return stdio if request.param == "stdio" else http


def with_mcp(config: Config, *servers: dict[str, Any]) -> Config:
    tools = ToolsConfig(
        modules=config.tools.modules,
        mcp=[McpServerConfig(**{"name": "tickets", "timeout": "20s", **s}) for s in servers],
    )
    return config.model_copy(update={"tools": tools})


@asynccontextmanager
async def bot_with(
    database_url: str, slack: FakeSlackAPI, config: Config, model: Any
) -> AsyncIterator[RunningBot]:
    settings = bot_settings(database_url, slack, mcp_retry_seconds=0.05, mcp_ping_seconds=0.2)
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model, settings=settings
    ) as bot:
        yield bot


def closing(ticket: str = "T1", answer: str = "Ticket closed.") -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("close_ticket", {"ticket_id": ticket}, call_id="call_1")],
            [assistant_message(answer)],
            [assistant_message("again")],
        ]
    )


async def resume_again(bot: RunningBot, saved: str) -> None:
    """Resume the very same stored pause again, as a buggy or racing caller might."""
    runs = bot.app.runs
    await runs.resume(
        saved,
        decisions={"call_1": CallDecision(approved=True)},
        new_messages=[],
        history=runs.history(ThreadRef(bot.slack.team_id, CHANNEL, THREAD_TS).key),
    )


async def paused_state(bot: RunningBot) -> str:
    async with bot.app.db.read() as session:
        [run] = (await session.scalars(select(Run))).all()
    assert run.state is not None
    return run.state


async def offered(bot: RunningBot) -> set[str]:
    return {tool.name for tool in await bot.app.runs.agent.get_all_tools(RunContextWrapper({}))}


async def test_an_mcp_call_needing_approval_pauses_and_runs_once_when_approved(
    database_url: str, slack: FakeSlackAPI, server: ServerFactory, server_log: ServerLog
) -> None:
    async with (
        server(server_log) as entry,
        bot_with(database_url, slack, with_mcp(approval_config(), entry), closing()) as bot,
    ):
        await ask(bot, "close ticket T1")
        [card] = approval_messages(slack)
        assert "close_ticket" in json.dumps(card.args["blocks"])
        assert "[approvals] default" in json.dumps(card.args["blocks"])
        assert server_log.calls("close_ticket") == []
        [approval_id] = approval_ids(card)
        saved = await paused_state(bot)
        await click(bot, approval_id)
        await click(bot, approval_id)
        await resume_again(bot, saved)
        assert server_log.calls("close_ticket") == [{"ticket_id": "T1", "note": ""}]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Ticket closed."
        if "url" in entry:
            # One HTTP session for the server, kept and reused: one discovery, one connection.
            assert len(server_log.requests("server/discover")) == 1
            assert len({r["peer"] for r in server_log.requests("tools/call")}) == 1


async def test_a_rejected_mcp_call_never_reaches_the_server(
    database_url: str, slack: FakeSlackAPI, server: ServerFactory, server_log: ServerLog
) -> None:
    model = closing(answer="I left the ticket open.")
    async with (
        server(server_log) as entry,
        bot_with(database_url, slack, with_mcp(approval_config(), entry), model) as bot,
    ):
        await ask(bot, "close ticket T1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, action=REJECT_ACTION)
        await reject_with(bot, approval_id, "Not this one.")
        assert "Not this one." in tool_outputs(model)[-1]
        assert server_log.calls("close_ticket") == []


async def test_tools_the_policy_names_never_run_without_a_card(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    config = approval_config(tools={"find_ticket": {"require": "never"}})
    model = ScriptedModel(
        [
            [function_call("find_ticket", {"ticket_id": "T9"}, call_id="call_1")],
            [assistant_message("It is open.")],
        ]
    )
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(config, entry), model) as bot,
    ):
        await ask(bot, "find T9")
        assert approval_messages(slack) == []
        assert server_log.calls("find_ticket") == [{"ticket_id": "T9"}]


async def test_the_edit_of_an_mcp_call_is_what_the_server_receives(
    database_url: str, slack: FakeSlackAPI, server: ServerFactory, server_log: ServerLog
) -> None:
    config = approval_config(tools={"close_ticket": {"require": "always", "allow_edit": True}})
    model = closing()
    async with (
        server(server_log) as entry,
        bot_with(database_url, slack, with_mcp(config, entry), model) as bot,
    ):
        await ask(bot, "close ticket T1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        status, _ = await submit_edit(bot, approval_id, {"ticket_id": "T2"})
        assert status == 200
        await click(bot, approval_id)
        assert server_log.calls("close_ticket") == [{"ticket_id": "T2", "note": ""}]
        assert "edited by an approver" in tool_outputs(model)[-1]


async def test_a_server_killed_mid_call_fails_the_call_with_a_reference_and_comes_back(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    model = ScriptedModel(
        [
            [function_call("hang", {"ticket_id": "T1"}, call_id="call_1")],
            [assistant_message("The ticket system failed.")],
            [assistant_message("again")],
        ]
    )
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(approval_config(), entry), model) as bot,
    ):
        await ask(bot, "hang on T1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        saved = await paused_state(bot)
        await bot.send(
            bot.requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="1700000002.000100",
                thread_ts=THREAD_TS,
                trigger_id="trigger-1",
            )
        )
        await server_log.wait_until(lambda log: len(log.calls("hang")) == 1)
        [pid] = server_log.starts()
        os.kill(pid, signal.SIGKILL)
        await bot.settle()
        [output] = tool_outputs(model)
        assert "reference" in output
        ref = output.split("reference ")[1].split(")")[0]
        assert ref in json.dumps(slack.calls_to("chat.update")[-1].args["blocks"])
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == (
            "The ticket system failed."
        )
        # The stdio server is started again, and the approved call is not run again.
        await server_log.wait_until(lambda log: bot.app.mcp.status()[0].state == "up")
        assert len(server_log.starts()) == 2
        await click(bot, approval_id)
        await resume_again(bot, saved)
        assert len(server_log.calls("hang")) == 1


async def test_a_server_down_at_start_up_is_missing_until_it_answers(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its tools appear when it comes up; one whose name is taken is withheld, not offered."""
    monkeypatch.setenv("TG_TEST_MCP_TOKEN", TOKEN)
    port = free_port()
    entry = {
        "url": f"http://127.0.0.1:{port}/mcp",
        "headers": {"Authorization": "Bearer ${TG_TEST_MCP_TOKEN}"},
    }
    model = ScriptedModel([[assistant_message("fine")]])
    async with bot_with(database_url, slack, with_mcp(approval_config(), entry), model) as bot:
        [status] = bot.app.mcp.status()
        assert status.state == "down"
        assert status.problem
        assert "find_ticket" not in await offered(bot)
        policy = await answer_text(bot, "policy")
        assert "MCP server `tickets` (http) is down" in policy
        assert "`find_ticket`" not in policy
        async with http_server(server_log, port=port, token=TOKEN, tools=["find_ticket", "refund"]):
            await server_log.wait_until(lambda _: bot.app.mcp.status()[0].state == "up")
            [status] = bot.app.mcp.status()
            assert status.tools == ("find_ticket",)
            assert status.withheld == ("refund",)
            assert "find_ticket" in await offered(bot)
            assert "find_ticket" in bot.app.runs.tool_names
            policy = await answer_text(bot, "policy")
            assert "MCP server `tickets` (http) is up: 1 tool" in policy
            assert "not offered, as another source has the name: `refund`" in policy
            assert "• `find_ticket` needs approval" in policy


async def test_the_allow_list_offers_only_the_tools_it_names(
    database_url: str, slack: FakeSlackAPI, server: ServerFactory, server_log: ServerLog
) -> None:
    model = ScriptedModel([[assistant_message("fine")]])
    async with server(server_log) as entry:
        config = with_mcp(approval_config(), {**entry, "tools": ["find_ticket"]})
        async with bot_with(database_url, slack, config, model) as bot:
            [status] = bot.app.mcp.status()
            assert status.tools == ("find_ticket",)
            names = await offered(bot)
            assert "find_ticket" in names
            assert "close_ticket" not in names
            assert "hang" not in names


async def test_a_name_clash_at_start_up_stops_it_naming_both(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog, tmp_path: Path
) -> None:
    async with stdio(server_log, tools=["find_ticket", "refund"]) as entry:
        with pytest.raises(ConfigError) as caught:
            async with bot_with(
                database_url, slack, with_mcp(approval_config(), entry), model=None
            ):
                pass
    assert "'refund'" in str(caught.value)
    assert "function tool" in str(caught.value)
    assert "MCP server 'tickets'" in str(caught.value)

    other = ServerLog(tmp_path / "other.log")
    async with stdio(server_log) as one, stdio(other, tools=["find_ticket"]) as two:
        config = with_mcp(approval_config(), one, {**two, "name": "crm"})
        with pytest.raises(ConfigError) as caught:
            async with bot_with(database_url, slack, config, model=None):
                pass
    assert "'find_ticket'" in str(caught.value)
    assert "MCP server 'tickets'" in str(caught.value)
    assert "MCP server 'crm'" in str(caught.value)


async def test_a_tool_gone_between_the_pause_and_the_click_tells_the_thread_and_runs_nothing(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(approval_config(), entry), closing()) as bot,
    ):
        await ask(bot, "close ticket T1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
    later = ScriptedModel([[assistant_message("should not be reached")]])
    async with (
        stdio(server_log, tools=["find_ticket"]) as entry,
        bot_with(database_url, slack, with_mcp(approval_config(), entry), later) as bot,
    ):
        await click(bot, approval_id)
        last = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
        assert "close_ticket is not offered any more" in last
        assert "Reference" in last
        assert server_log.calls("close_ticket") == []


async def test_a_restart_between_the_pause_and_the_click_runs_the_call_once_in_the_new_process(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog, tmp_path: Path
) -> None:
    """The second process starts its own server after the pause; SIGTERM then closes it."""
    command = json.dumps(stdio_command(server_log))
    extra = (
        f'\n[[tools.mcp]]\nname = "tickets"\ncommand = {command}\n'
        f"env = {{ PYTHONPATH = {json.dumps(str(ROOT))} }}\n"
    )
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_tool_calls(("close_ticket", {"ticket_id": "T7"}))
        async with bot_process(database_url, slack, model, tmp_path, extra_config=extra) as bot:
            await bot.send(requests.mention(text="close T7", channel=CHANNEL, ts="2.5"))
            await slack.wait_for("chat.postMessage")
            bot.process.kill()
            await bot.process.wait()
        [approval_id] = approval_ids(approval_messages(slack)[0])
        assert server_log.calls("close_ticket") == []
        model.reply_text("T7 closed after the restart.")
        async with bot_process(database_url, slack, model, tmp_path, extra_config=extra) as bot:
            click = requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="2.6",
                thread_ts="2.5",
            )
            assert await bot.send(click) == 200
            await slack.wait_for(
                "chat.postMessage",
                where=lambda c: c.args.get("text") == "T7 closed after the restart.",
            )
            bot.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
        assert len(server_log.starts()) == 2
        assert server_log.calls("close_ticket") == [{"ticket_id": "T7", "note": ""}]
        assert "Traceback" not in "".join(bot.log)


async def test_rules_on_arguments_decide_mcp_calls_like_function_calls(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    config = approval_config(
        rules=[{"tools": ["close_ticket"], "when": {"ticket_id": {"eq": "T1"}}, "require": "never"}]
    )
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(config, entry), closing("T1")) as bot,
    ):
        await ask(bot, "close ticket T1")
        assert approval_messages(slack) == []
        assert server_log.calls("close_ticket") == [{"ticket_id": "T1", "note": ""}]
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(config, entry), closing("T2")) as bot,
    ):
        await ask(bot, "close ticket T2", ts="1700000009.000100")
        [card] = approval_messages(slack)
        assert "[approvals] default" in json.dumps(card.args["blocks"])
        assert len(server_log.calls("close_ticket")) == 1


async def test_a_policy_naming_a_tool_no_server_offers_stops_start_up_once_all_are_up(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    config = approval_config(tools={"close_tikcet": {"require": "never"}})
    async with stdio(server_log) as entry:
        with pytest.raises(ConfigError) as caught:
            async with bot_with(database_url, slack, with_mcp(config, entry), model=None):
                pass
    assert caught.value.key == "approvals.tools.close_tikcet"


async def test_parallel_mcp_calls_with_a_quorum_and_a_thread_approval_run_once_each(
    database_url: str, slack: FakeSlackAPI, server_log: ServerLog
) -> None:
    """Two calls of one turn pause together: one needs two approvers, the other is approved
    for the thread, which then lets the next such call through without a card."""
    config = approval_config(
        tools={
            "close_ticket": {"require": "always", "approvals_needed": 2},
            "find_ticket": {
                "require": "always",
                "approvers": [APPROVER],
                "allow_for_thread": True,
            },
        }
    )
    model = ScriptedModel(
        [
            [
                function_call("close_ticket", {"ticket_id": "T1"}, call_id="call_1"),
                function_call("find_ticket", {"ticket_id": "T2"}, call_id="call_2"),
            ],
            [assistant_message("Both done.")],
            [function_call("find_ticket", {"ticket_id": "T3"}, call_id="call_3")],
            [assistant_message("Found it too.")],
        ]
    )
    async with (
        stdio(server_log) as entry,
        bot_with(database_url, slack, with_mcp(config, entry), model) as bot,
    ):
        await ask(bot, "close T1 and find T2")
        cards = approval_messages(slack)
        assert len(cards) == 2
        close_id, find_id = (approval_ids(card)[0] for card in cards)
        await click(bot, find_id, action=APPROVE_THREAD_ACTION)
        await click(bot, close_id, user=APPROVER)
        await click(bot, close_id, user=APPROVER)  # the same person counts once
        assert server_log.calls("close_ticket") == []
        await click(bot, close_id, user=GROUP_MEMBER)
        assert server_log.calls("close_ticket") == [{"ticket_id": "T1", "note": ""}]
        assert server_log.calls("find_ticket") == [{"ticket_id": "T2"}]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Both done."

        await say(bot, "1700000003.000100")
        assert len(approval_messages(slack)) == 2  # no new card: the thread approval covers it
        assert server_log.calls("find_ticket") == [{"ticket_id": "T2"}, {"ticket_id": "T3"}]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Found it too."

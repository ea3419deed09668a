"""Several `python -m bot` processes behind one request URL, sharing one PostgreSQL database."""

import asyncio
import json
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bot.slack.blocks import APPROVE_ACTION, RETRY_ACTION
from tests.bot_process import BotProcess, bot_process
from tests.conftest import empty_database
from tests.fakes.model_server import FakeModelServer, Reply, text_reply, tool_calls_reply
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import ASKER, CHANNEL, approval_ids, texts
from tests.running_app import SIGNING_SECRET

pytestmark = pytest.mark.postgres

APPROVER = "UAPPROVER1"


# Tests that kill nobody keep a lease that a loaded 2-core machine cannot starve: a lease
# that lapses stops its job, and these tests are about clicks and order, not recovery.
CALM = {"THREADGATE_LEASE_SECONDS": "15"}


async def start_processes(
    stack: AsyncExitStack,
    count: int,
    pg_url: str,
    slack: FakeSlackAPI,
    model: FakeModelServer,
    tmp_path: Path,
    **env: str,
) -> list[BotProcess]:
    started = await asyncio.gather(
        *(
            stack.enter_async_context(
                bot_process(pg_url, slack, model, tmp_path, stream=False, **env)
            )
            for _ in range(count)
        )
    )
    return list(started)


def tool_log(tmp_path: Path) -> list[str]:
    path = tmp_path / "tool.log"
    return path.read_text().splitlines() if path.exists() else []


def last_user_text(request: dict[str, Any]) -> str:
    items = request.get("input")
    if not isinstance(items, list):
        return str(items)
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def answer_text(text: str) -> Any:
    return lambda c: c.args.get("text") == text


@pytest.mark.parametrize("processes", [2, 4])
async def test_a_hundred_clicks_over_several_processes_run_the_tool_once(
    pg_url: str, slack: FakeSlackAPI, tmp_path: Path, processes: int
) -> None:
    await empty_database(pg_url)
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model, AsyncExitStack() as stack:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c100"}))
        model.reply_text("Deleted once.")
        bots = await start_processes(stack, processes, pg_url, slack, model, tmp_path, **CALM)
        await bots[0].send(requests.mention(text="delete c100", user=ASKER, ts="30.1"))
        [request] = await slack.wait_for("chat.postMessage", where=lambda c: bool(approval_ids(c)))
        [approval_id] = approval_ids(request)
        clicks = [
            bots[i % processes].send(
                requests.block_actions(
                    user=APPROVER,
                    action_id=APPROVE_ACTION,
                    value=approval_id,
                    channel=CHANNEL,
                    message_ts="30.2",
                    thread_ts="30.1",
                )
            )
            for i in range(100)
        ]
        statuses = await asyncio.gather(*clicks)
        assert set(statuses) == {200}
        await slack.wait_for("chat.postMessage", where=answer_text("Deleted once."))
        assert tool_log(tmp_path) == ["delete_customer:c100"]
        # Every losing click is told who decided (in whichever process it reached).
        notes = await slack.wait_for("chat.postEphemeral", count=99)
        assert len(notes) == 99
        assert all("already decided" in str(note.args["text"]) for note in notes)
    assert texts(slack.messages_in_thread(CHANNEL, "30.1")).count("Deleted once.") == 1


async def test_an_event_sent_to_every_process_starts_one_run(
    pg_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    await empty_database(pg_url)
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model, AsyncExitStack() as stack:
        model.reply_text("Only one of us answers.")
        bots = await start_processes(stack, 4, pg_url, slack, model, tmp_path, **CALM)
        mention = requests.mention(text="hi all", ts="31.1")
        retry = requests.event(json.loads(mention.body)["event"], event_id="Ev0SAME", retry_num=1)
        first = requests.event(json.loads(mention.body)["event"], event_id="Ev0SAME")
        await asyncio.gather(*(bot.send(first) for bot in bots), *(bot.send(retry) for bot in bots))
        await slack.wait_for("chat.postMessage", where=answer_text("Only one of us answers."))
        for bot in bots:
            bot.process.send_signal(signal.SIGTERM)
        assert [await bot.process.wait() for bot in bots] == [0, 0, 0, 0]
    assert len(model.requests) == 1
    assert texts(slack.calls_to("chat.postMessage")) == ["Only one of us answers."]


async def test_messages_for_one_thread_on_alternating_processes_are_answered_in_order(
    pg_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    await empty_database(pg_url)
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model, AsyncExitStack() as stack:
        model.respond_with(lambda request: text_reply("re: " + last_user_text(request)))
        bots = await start_processes(stack, 2, pg_url, slack, model, tmp_path, **CALM)
        await bots[0].send(requests.mention(text="m0", ts="32.0"))
        for i in range(1, 8):
            await bots[i % 2].send(
                requests.channel_message(text=f"m{i}", ts=f"32.{i}", thread_ts="32.0")
            )
        await slack.wait_for("chat.postMessage", count=8)
    assert texts(slack.messages_in_thread(CHANNEL, "32.0")) == [f"re: m{i}" for i in range(8)]
    # Each run saw every earlier turn: they ran one after another, never side by side.
    for i, request in enumerate(model.requests):
        assert sum(1 for item in request["input"] if item.get("role") == "user") == i + 1


async def test_sigkill_mid_run_is_noticed_within_the_lease_and_retry_never_reruns_the_tool(
    pg_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    await empty_database(pg_url)
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    stuck = asyncio.Event()
    model_blocked = asyncio.Event()
    hold = asyncio.Event()

    async def respond(request: dict[str, Any]) -> Reply:
        if "delete c5" in json.dumps(request["input"]) and not any(
            item.get("type") == "function_call_output" for item in request["input"]
        ):
            return tool_calls_reply(("delete_customer", {"customer_id": "c5"}))
        if not stuck.is_set():
            stuck.set()
            model_blocked.set()
            await hold.wait()  # the process is killed while it waits here
        return text_reply("c5 is gone.")

    async with FakeModelServer() as model, AsyncExitStack() as stack:
        model.respond_with(respond)
        first, second = await start_processes(stack, 2, pg_url, slack, model, tmp_path)
        await first.send(requests.mention(text="delete c5", user=ASKER, ts="33.1"))
        [request] = await slack.wait_for("chat.postMessage", where=lambda c: bool(approval_ids(c)))
        [approval_id] = approval_ids(request)
        await first.send(
            requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="33.2",
                thread_ts="33.1",
            )
        )
        await asyncio.wait_for(model_blocked.wait(), timeout=30)
        assert tool_log(tmp_path) == ["delete_customer:c5"]
        first.process.kill()
        await first.process.wait()

        [note] = await slack.wait_for("chat.postMessage", where=has_retry, timeout=30)
        assert "stopped unexpectedly" in note.args["text"]
        run_id = retry_value(note)
        await second.send(
            requests.block_actions(
                user=ASKER,
                action_id=RETRY_ACTION,
                value=run_id,
                channel=CHANNEL,
                message_ts="33.3",
                thread_ts="33.1",
            )
        )
        await slack.wait_for("chat.postMessage", where=answer_text("c5 is gone."))
        hold.set()
    assert tool_log(tmp_path) == ["delete_customer:c5"]


async def test_sigterm_finishes_running_work_or_hands_it_back(
    pg_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    await empty_database(pg_url)
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    release = asyncio.Event()
    started = asyncio.Event()

    async def respond(request: dict[str, Any]) -> Reply:
        text = last_user_text(request)
        if text in ("finish me", "hand me back"):
            started.set()
            await release.wait()
        return text_reply("re: " + text)

    async with FakeModelServer() as model, AsyncExitStack() as stack:
        model.respond_with(respond)
        finishing = await stack.enter_async_context(
            bot_process(pg_url, slack, model, tmp_path, THREADGATE_DRAIN_TIMEOUT="20")
        )
        await finishing.send(requests.mention(text="finish me", ts="34.1"))
        await asyncio.wait_for(started.wait(), timeout=30)
        finishing.process.send_signal(signal.SIGTERM)
        release.set()
        assert await asyncio.wait_for(finishing.process.wait(), timeout=30) == 0
        assert texts(slack.messages_in_thread(CHANNEL, "34.1")) == ["re: finish me"]

        release.clear()
        started.clear()
        handing_back = await stack.enter_async_context(
            bot_process(pg_url, slack, model, tmp_path, THREADGATE_DRAIN_TIMEOUT="1")
        )
        await handing_back.send(requests.mention(text="hand me back", ts="35.1"))
        await asyncio.wait_for(started.wait(), timeout=30)
        handing_back.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(handing_back.process.wait(), timeout=30) == 0
        [note] = [c for c in slack.messages_in_thread(CHANNEL, "35.1") if has_retry(c)]
        assert "stopped (a restart or deploy)" in note.args["text"]

        release.set()
        successor = await stack.enter_async_context(bot_process(pg_url, slack, model, tmp_path))
        await successor.send(
            requests.block_actions(
                user=ASKER,
                action_id=RETRY_ACTION,
                value=retry_value(note),
                channel=CHANNEL,
                message_ts="35.2",
                thread_ts="35.1",
            )
        )
        await slack.wait_for("chat.postMessage", where=answer_text("re: hand me back"))


def has_retry(call: RecordedCall) -> bool:
    return RETRY_ACTION in json.dumps(call.args.get("blocks") or [])


def retry_value(call: RecordedCall) -> str:
    for block in call.args["blocks"]:
        if block.get("type") == "actions":
            value: str = block["elements"][0]["value"]
            return value
    raise AssertionError("no Retry button")

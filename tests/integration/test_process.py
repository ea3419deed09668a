"""`python -m bot` as a user runs it: a real process, real ports, the fakes, signals."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.slack.blocks import APPROVE_ACTION
from tests.bot_process import ROOT, bot_process, free_port
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import APPROVER, CHANNEL, approval_ids, approval_messages, texts
from tests.running_app import SIGNING_SECRET


async def test_a_signed_mention_is_answered_and_sigterm_exits_cleanly(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_text("Hello from the real process.")
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            async with (
                aiohttp.ClientSession() as http,
                http.get(bot.url + "/healthz") as health,
            ):
                assert health.status == 200
            requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
            assert await bot.send(requests.mention(text="hi", channel=CHANNEL, ts="1.5")) == 200
            [answer] = await slack.wait_for("chat.postMessage")
            assert answer.args["text"] == "Hello from the real process."
            assert answer.args["thread_ts"] == "1.5"
            bot.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
        log = "".join(bot.log)
        for secret in (slack.bot_token, SIGNING_SECRET, "sk-test-key"):
            assert secret not in log


async def test_sigkill_between_the_buttons_and_the_click_loses_nothing(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c7"}))
        async with bot_process(database_url, slack, model, tmp_path) as bot:
            await bot.send(requests.mention(text="delete c7", channel=CHANNEL, ts="2.5"))
            await slack.wait_for("chat.postMessage")
            bot.process.kill()
            await bot.process.wait()
        [request] = approval_messages(slack)
        [approval_id] = approval_ids(request)
        model.reply_text("c7 deleted after the crash.")
        async with bot_process(database_url, slack, model, tmp_path) as bot:
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
                where=lambda c: c.args.get("text") == "c7 deleted after the crash.",
            )
        assert (tmp_path / "tool.log").read_text().splitlines() == ["delete_customer:c7"]
        assert texts(slack.messages_in_thread(CHANNEL, "2.5"))[-1] == "c7 deleted after the crash."


async def test_a_token_slack_refuses_ends_start_up_with_a_clear_line(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": "xoxb-revoked-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
        "DATABASE_URL": database_url,
        "PORT": str(free_port()),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    text = stderr.decode()
    assert "Slack refused the bot token (invalid_auth)" in text
    assert "Traceback" not in text
    assert "xoxb-revoked-token" not in text


async def _migrate_to_a_missing_directory(tmp_path: Path, *argv: str) -> tuple[int, list[str]]:
    """Runs `python <argv>` against a SQLite file whose directory does not exist; returns the
    exit code and the lines written to stderr."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode().strip().splitlines()


async def test_migrate_against_a_missing_database_says_so_in_one_line(tmp_path: Path) -> None:
    code, lines = await _migrate_to_a_missing_directory(tmp_path, "-m", "bot", "migrate")
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("threadgate: migration failed:")


# aiosqlite stops a connection that failed to open from its worker thread; here that stop is
# slowed down, so the event loop of a fast-failing command is closed before the thread reports.
SLOW_DRIVER_STOP = """
import asyncio, sys, time
import aiosqlite.core
stop = aiosqlite.core.Connection.stop
def slow_stop(self):
    self._tx.put_nowait((None, lambda: time.sleep(0.3)))
    return stop(self)
aiosqlite.core.Connection.stop = slow_stop
from bot.__main__ import load_settings, migrate
from bot.settings import Settings
code = asyncio.run(migrate(load_settings(Settings)))
time.sleep(0.6)  # a traceback from the worker thread would be printed by now
sys.exit(code)
"""


async def test_a_failed_migration_leaves_no_driver_thread_behind_to_print_a_traceback(
    tmp_path: Path,
) -> None:
    code, lines = await _migrate_to_a_missing_directory(tmp_path, "-c", SLOW_DRIVER_STOP)
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("threadgate: migration failed:")

"""What a conversation says never reaches the process log, whatever LOG_LEVEL allows.

With encryption on, the log is the one place the content could still leak in clear text; with
it off, INFO and above still go to log stores that people with no access to the channel read.
The phrase travels everywhere a conversation goes: the mention, the model's tool calls and
their arguments, a tool's output and its error, the answer, the database and the Web API.
"""

import asyncio
import signal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.slack.blocks import APPROVE_ACTION
from tests.bot_process import bot_process
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.integration.conftest import APPROVER, CHANNEL, approval_ids, approval_messages
from tests.running_app import SIGNING_SECRET

PHRASE = "heliotrope-walrus-5521"


@pytest.mark.parametrize(
    ("log_level", "encrypted"),
    [("DEBUG", True), ("DEBUG", False), ("INFO", False)],
    ids=["debug-encrypted", "debug-plain", "info-plain"],
)
async def test_a_conversation_leaves_no_trace_in_the_log(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path, log_level: str, encrypted: bool
) -> None:
    env = {"LOG_LEVEL": log_level}
    if encrypted:
        env["THREADGATE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model:
        model.reply_tool_calls(
            ("delete_customer", {"customer_id": PHRASE}), ("explode", {"reason": PHRASE})
        )
        async with bot_process(database_url, slack, model, tmp_path, stream=True, **env) as bot:
            mention = requests.mention(text=f"please remove {PHRASE}", channel=CHANNEL, ts="3.5")
            assert await bot.send(mention) == 200
            await slack.wait_for("chat.postMessage", count=2, where=lambda c: bool(approval_ids(c)))
            ids = [i for message in approval_messages(slack) for i in approval_ids(message)]
            answer = f"Removed {PHRASE}; the other call failed."
            model.reply_text(answer)
            for approval_id in ids:
                click = requests.block_actions(
                    user=APPROVER,
                    action_id=APPROVE_ACTION,
                    value=approval_id,
                    channel=CHANNEL,
                    message_ts="3.6",
                    thread_ts="3.5",
                )
                assert await bot.send(click) == 200
            await slack.wait_for("chat.stopStream", count=2)  # the pause's, then the answer's
            assert answer in "".join(s.text for s in slack.streams)
            bot.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
        assert sorted((tmp_path / "tool.log").read_text().splitlines()) == [
            f"delete_customer:{PHRASE}",
            f"explode:{PHRASE}",
        ]
    assert any(f" {log_level} " in line for line in bot.log)
    assert [line for line in bot.log if PHRASE in line] == []

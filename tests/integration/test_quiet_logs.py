"""A healthy bot logs nothing at WARNING or above: a warning there must mean something."""

import asyncio
import signal
from pathlib import Path

from tests.bot_process import bot_process
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SlackRequestBuilder
from tests.running_app import SIGNING_SECRET

LOUD = (" WARNING ", " ERROR ", " CRITICAL ")


async def test_a_healthy_start_and_stop_log_no_warning(
    database_url: str, slack: FakeSlackAPI, tmp_path: Path
) -> None:
    """`python -m bot` as deployed, with SLACK_BOT_TOKEN in its environment as in production."""
    requests = SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id)
    async with FakeModelServer() as model, bot_process(database_url, slack, model, tmp_path) as bot:
        assert await bot.send(requests.channel_join()) == 200
        assert await bot.send(requests.slash_command(command="/not-ours")) == 404
        bot.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.process.wait(), timeout=30) == 0
    loud = [line for line in bot.log if any(level in line for level in LOUD)]
    assert not loud, "".join(bot.log)

"""`python -m bot` started as a user would, against the fakes, for process-level tests."""

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SignedRequest
from tests.running_app import SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[agent]
model = "gpt-test"
stream = {stream}

[tools]
modules = ["tests.tools_for_tests"]

[approvals]
approvers = ["UAPPROVER1"]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    url: str
    log: list[str] = field(default_factory=list)

    async def send(self, request: SignedRequest) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url + "/slack/events", data=request.body, headers=request.headers) as r,
        ):
            return r.status


def bot_env(
    database_url: str,
    slack: FakeSlackAPI,
    model: FakeModelServer,
    tmp_path: Path,
    port: int,
    *,
    stream: bool = False,
    extra_config: str = "",
) -> dict[str, str]:
    """Answers are posted whole unless `stream`: most process tests follow the outbox's posts.
    `extra_config` is TOML added to the file's end."""
    config = tmp_path / "threadgate.toml"
    config.write_text(CONFIG.format(stream=str(stream).lower()) + extra_config, encoding="utf-8")
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": model.base_url,
        "DATABASE_URL": database_url,
        "THREADGATE_CONFIG": str(config),
        "THREADGATE_TEST_TOOL_LOG": str(tmp_path / "tool.log"),
        "PORT": str(port),
        # A killed process keeps its thread leases until they expire: keep that short here.
        "THREADGATE_LEASE_SECONDS": "2",
        "THREADGATE_SWEEP_INTERVAL": "0.5",
    }


@asynccontextmanager
async def bot_process(
    database_url: str,
    slack: FakeSlackAPI,
    model: FakeModelServer,
    tmp_path: Path,
    *,
    stream: bool = False,
    extra_config: str = "",
    **env: str,
) -> AsyncIterator[BotProcess]:
    port = free_port()
    environment = (
        bot_env(
            database_url, slack, model, tmp_path, port, stream=stream, extra_config=extra_config
        )
        | env
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=environment,
        stderr=asyncio.subprocess.PIPE,
    )
    bot = BotProcess(process=process, url=f"http://127.0.0.1:{port}")
    assert process.stderr is not None
    stderr = process.stderr

    async def read_until_ready() -> None:
        while line := (await stderr.readline()).decode():
            bot.log.append(line)
            if "threadgate ready" in line:
                return
        raise AssertionError("the bot exited before it was ready:\n" + "".join(bot.log))

    await asyncio.wait_for(read_until_ready(), timeout=60)

    async def keep_reading() -> None:
        while line := (await stderr.readline()).decode():
            bot.log.append(line)

    reader = asyncio.create_task(keep_reading())
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader

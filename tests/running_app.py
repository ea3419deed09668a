"""Runs the real app on a real port against the fakes, the way Slack would reach it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from bot.app import build_app
from bot.config import Config, load_config
from bot.container import Threadgate
from bot.settings import Settings
from bot.slack import socket_mode
from bot.slack.client import build_slack_client
from bot.slack.http_server import build_web_app
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SignedRequest, SlackRequestBuilder
from tests.fakes.socket_mode import Ack

SIGNING_SECRET = "test-signing-secret"


def bot_settings(database_url: str, slack: FakeSlackAPI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": SecretStr(slack.bot_token),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": slack.base_url,
        "openai_api_key": SecretStr("sk-test"),
        "openai_base_url": "http://127.0.0.1:9/v1",
        "database_url": database_url,
        "sweep_interval": 3600.0,
        "drain_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class RunningBot:
    app: Threadgate
    url: str
    slack: FakeSlackAPI
    requests: SlackRequestBuilder
    http: aiohttp.ClientSession

    async def send(self, request: SignedRequest) -> tuple[int, str]:
        async with self.http.post(
            self.url + "/slack/events", data=request.body, headers=request.headers
        ) as response:
            return response.status, await response.text()

    async def deliver(self, request: SignedRequest) -> Ack:
        """Over Socket Mode: what `send` POSTs, as an envelope, once the bot acked it."""
        return await self.slack.socket.send_and_ack(request)

    async def settle(self) -> None:
        """Wait for every piece of background work, including work that work started."""
        await self.app.background.idle()


@asynccontextmanager
async def running_bot(
    *,
    database_url: str,
    slack: FakeSlackAPI,
    config: Config | None = None,
    model: Any = None,
    settings: Settings | None = None,
    config_path: Path | None = None,
    live: bool = False,
    socket: bool = False,
) -> AsyncIterator[RunningBot]:
    """`live` streams answers as a workspace with streaming does; without it answers are
    posted whole, as where streaming is switched off, which most tests read more easily.

    With `socket` the bot takes Slack's requests over Socket Mode, as `python -m bot` does
    with SLACK_APP_TOKEN set, and serves only /healthz over HTTP."""
    if settings is None:
        overrides: dict[str, Any] = {"threadgate_config": config_path}
        if socket:
            overrides["slack_app_token"] = SecretStr(slack.app_token)
        settings = bot_settings(database_url, slack, **overrides)
    config = config if config is not None else load_config(settings.threadgate_config)
    config = config.model_copy(update={"agent": config.agent.model_copy(update={"stream": live})})
    # With OAuth (many workspaces) there is no one token: each comes from its installation.
    token = slack.bot_token if settings.slack_client_id is None else None
    client = build_slack_client(token, base_url=slack.base_url, backoff_factor=0.01)
    app = build_app(settings, config=config, slack_client=client, model=model)
    runner = web.AppRunner(build_web_app(app, serve_events=not socket), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    socket_handler: AsyncSocketModeHandler | None = None
    try:
        await app.start()
        if socket:
            socket_handler = await socket_mode.connect(app, slack.app_token)
        async with aiohttp.ClientSession() as http:
            yield RunningBot(
                app=app,
                url=f"http://127.0.0.1:{port}",
                slack=slack,
                requests=SlackRequestBuilder(SIGNING_SECRET, team_id=slack.team_id),
                http=http,
            )
    finally:
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await app.stop(drain_timeout=5)
        await runner.cleanup()
        await asyncio.sleep(0)

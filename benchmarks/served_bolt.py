"""What the benchmark's own Bolt apps (the baselines and memory-sdk) share: one Bolt app behind
`POST /slack/events`, where the bot serves it, whose work after each ack runs in tasks the
harness can wait for between samples."""

import asyncio
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


class ServedBolt:
    def __init__(self, *, slack_url: str, bot_token: str, signing_secret: str) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        # Acks go out before the listener's work, as the bot's do: with Bolt's default
        # `process_before_response=False` an action's ack would wait for Bolt's 10 ms polls.
        self.bolt = AsyncApp(
            client=AsyncWebClient(token=bot_token, base_url=slack_url),
            signing_secret=signing_secret,
            process_before_response=True,
        )

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    def web_app(self) -> web.Application:
        """Bolt's own aiohttp adapter behind `POST /slack/events`."""

        async def slack_events(request: web.Request) -> web.Response:
            bolt_request = await to_bolt_request(request)
            return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

        app = web.Application()
        app.router.add_post("/slack/events", slack_events)
        return app

"""Serve an app under test on 127.0.0.1, on a port the OS picks, as tests/running_app.py does."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

# The Slack signing secret the apps verify and the request builder signs with.
SIGNING_SECRET = "benchmark-signing-secret"  # noqa: S105 - shared only with the fakes' requests


@asynccontextmanager
async def served(web_app: web.Application) -> AsyncIterator[str]:
    """Yields the URL of the app's `POST /slack/events`."""
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()

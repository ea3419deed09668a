"""An app under test alone in its own process, for the scenarios where sharing the sender's and
the fakes' CPU would distort the result (acks under concurrency, resident memory).

    python -m benchmarks.process bot|baseline|baseline-sdk --slack-url U --bot-token T
        --model-url U [--database-url U]

serves the app on 127.0.0.1 (port 0), writes {"url": …} on stdout once it is ready, and stops
when its stdin closes. The child imports only what its app needs: the plain baseline never
loads the Agents SDK, the bot, or SQLAlchemy. The bot's child also answers GET /benchmark/idle
once its background work is done, so that a parent can let it go idle between samples.

`bot_processes` runs several bot children on one database and spreads the requests over them.
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp

if TYPE_CHECKING:
    from aiohttp import web

    from benchmarks.harness import Endpoint, Fakes
    from bot.container import Threadgate

ROOT = Path(__file__).resolve().parents[1]
AppName = Literal["bot", "baseline", "baseline-sdk", "memory-sdk"]
APPS: tuple[AppName, ...] = ("bot", "baseline", "baseline-sdk", "memory-sdk")
IDLE_PATH = "/benchmark/idle"


def idle_url(events_url: str) -> str:
    return events_url.removesuffix("/slack/events") + IDLE_PATH


def spread_name(processes: int) -> str:
    """The app label of `processes` bot processes sharing one database, e.g. "bot x2"."""
    return f"bot x{processes}"


async def serve(
    app: AppName, *, slack_url: str, token: str, model_url: str, database_url: str
) -> None:
    """The child's side: serve, say where, run until stdin closes."""
    from openai import AsyncOpenAI

    from benchmarks.baseline import Baseline, BaselineKind
    from benchmarks.serving import SIGNING_SECRET, served

    logging.basicConfig(level=logging.WARNING)
    model = AsyncOpenAI(base_url=model_url, api_key="sk-benchmark")
    threadgate: Threadgate | None = None
    web_app: web.Application
    if app == "bot":
        from aiohttp.web import Request, Response

        from benchmarks.harness import build_bot
        from bot.slack.http_server import build_web_app

        threadgate = build_bot(
            slack_url=slack_url,
            bot_token=token,
            model_url=model_url,
            database_url=database_url,
        )
        web_app = build_web_app(threadgate)
        background = threadgate.background

        async def idle(_request: Request) -> Response:
            await background.idle()
            return Response(text="idle")

        web_app.router.add_get(IDLE_PATH, idle)
    elif app == "memory-sdk":
        from benchmarks.harness import build_memory_sdk

        web_app = build_memory_sdk(slack_url=slack_url, bot_token=token, model=model).web_app()
    else:
        kind: BaselineKind = "agents" if app == "baseline-sdk" else "openai"
        web_app = Baseline(
            slack_url=slack_url,
            bot_token=token,
            signing_secret=SIGNING_SECRET,
            model=model,
            kind=kind,
        ).web_app()
    async with served(web_app) as url:
        if threadgate is not None:
            await threadgate.start()
            gc.collect()  # as `python -m bot` does once it is ready
            gc.freeze()
        sys.stdout.write(json.dumps({"url": url}) + "\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.read)
        if threadgate is not None:
            await threadgate.stop(drain_timeout=10)
    await model.close()


@dataclass
class AppProcess:
    endpoint: "Endpoint"
    pid: int


async def _nothing() -> None:
    return None


@asynccontextmanager
async def app_process(app: AppName, fakes: "Fakes", database_url: str) -> AsyncIterator[AppProcess]:
    """The parent's side: start the child on the fakes, yield an endpoint to reach it."""
    from benchmarks.harness import BenchmarkError, Endpoint, request_builder

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.process",
        app,
        "--slack-url",
        fakes.slack.base_url,
        "--bot-token",
        fakes.slack.bot_token,
        "--model-url",
        fakes.model.base_url,
        "--database-url",
        database_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
        if not line:
            raise BenchmarkError(f"the {app} process exited before it served")
        url = str(json.loads(line)["url"])
        async with aiohttp.ClientSession() as http:
            endpoint = Endpoint(
                app,
                url,
                http,
                request_builder(fakes.slack),
                _nothing,
                approvals=app in ("bot", "memory-sdk"),
            )
            yield AppProcess(endpoint, child.pid)
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout=30)
        except TimeoutError:
            child.kill()
            await child.wait()


@asynccontextmanager
async def bot_processes(
    fakes: "Fakes", database_url: str, processes: int
) -> AsyncIterator["Endpoint"]:
    """`processes` bot children on one database; each request goes to the next one in turn, so
    a click reaches another process than the mention before it. Idle: every child is idle."""
    from benchmarks.harness import BenchmarkError, Endpoint, request_builder

    async with AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(app_process("bot", fakes, database_url))
            for _ in range(processes)
        ]
        urls = tuple(child.endpoint.url for child in children)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def idle_one(url: str) -> None:
            async with http.get(idle_url(url)) as response:
                await response.read()
                if response.status != 200:
                    raise BenchmarkError(f"{url} answered {response.status} to the idle probe")

        async def idle() -> None:
            await asyncio.gather(*(idle_one(url) for url in urls))

        yield Endpoint(
            spread_name(processes),
            urls[0],
            http,
            request_builder(fakes.slack),
            idle,
            approvals=True,
            urls=urls,
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.process")
    parser.add_argument("app", choices=APPS)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--bot-token", required=True)
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--database-url", default="sqlite+aiosqlite:///./benchmark.db")
    args = parser.parse_args(argv)
    asyncio.run(
        serve(
            args.app,
            slack_url=args.slack_url,
            token=args.bot_token,
            model_url=args.model_url,
            database_url=args.database_url,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

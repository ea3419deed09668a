"""An app under test alone in its own process, for the scenarios where sharing the sender's and
the fakes' CPU would distort the result (acks under concurrency, resident memory).

    python -m benchmarks.process bot|baseline|baseline-sdk --slack-url U --bot-token T
        --model-url U [--database-url U]

serves the app on 127.0.0.1 (port 0), writes {"url": …} on stdout once it is ready, and stops
when its stdin closes. The child imports only what its app needs: the plain baseline never
loads the Agents SDK, the bot, or SQLAlchemy.
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp

if TYPE_CHECKING:
    from aiohttp import web

    from benchmarks.harness import Endpoint, Fakes
    from bot.app import Threadgate

ROOT = Path(__file__).resolve().parents[1]
AppName = Literal["bot", "baseline", "baseline-sdk"]
APPS: tuple[AppName, ...] = ("bot", "baseline", "baseline-sdk")


async def serve(
    app: AppName, *, slack_url: str, token: str, model_url: str, database_url: str
) -> None:
    """The child's side: serve, say where, run until stdin closes."""
    from openai import AsyncOpenAI

    from benchmarks.baseline import MODEL, Baseline, BaselineKind
    from benchmarks.serving import SIGNING_SECRET, served

    logging.basicConfig(level=logging.WARNING)
    model = AsyncOpenAI(base_url=model_url, api_key="sk-benchmark")
    threadgate: Threadgate | None = None
    web_app: web.Application
    if app == "bot":
        from agents import OpenAIResponsesModel

        from benchmarks.harness import build_bot
        from bot.http_server import build_web_app

        threadgate = build_bot(
            slack_url=slack_url,
            bot_token=token,
            model=OpenAIResponsesModel(model=MODEL, openai_client=model),
            database_url=database_url,
        )
        web_app = build_web_app(threadgate)
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
            endpoint = Endpoint(app, url, http, request_builder(fakes.slack), _nothing)
            yield AppProcess(endpoint, child.pid)
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout=30)
        except TimeoutError:
            child.kill()
            await child.wait()


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

"""The fakes, the two apps under test served on 127.0.0.1, and the signed requests that reach them.

Both apps are built and served in this process the way tests/running_app.py serves the bot: the
app's aiohttp application behind an AppRunner on port 0. Requests are signed like Slack's.
"""

import asyncio
import gc
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import SecretStr

from benchmarks.baseline import Baseline, BaselineKind
from benchmarks.serving import SIGNING_SECRET, served
from bot.app import build_app
from bot.config import AgentConfig, ApprovalsConfig, Config, ToolsConfig
from bot.container import Threadgate
from bot.settings import Settings
from bot.slack.client import build_slack_client
from bot.slack.http_server import build_web_app
from tests.fakes.model_server import (
    DEFAULT_TEXT,
    FakeModelServer,
    Reply,
    text_reply,
    tool_calls_reply,
)
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.fakes.slack_requests import SignedRequest, SlackRequestBuilder

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from benchmarks.memory_sdk import InMemoryBot

ASKER = "U0ASKER"
APPROVER = "UAPPROVER1"
CHANNEL = "C0BENCH"
DELETE_REQUEST = "please delete customer c42"
FINAL_ANSWER = "Customer c42 is gone."
# Scenario 8's mention, and the answer the paced model streams for it word by word.
FEW_WORDS_REQUEST = "answer in a few words"
FEW_WORDS_ANSWER = "Here are a few words, streamed one at a time."


_thread_numbers = itertools.count(1)


def new_thread_ts() -> str:
    """Unique in this process, and apart from the seeded threads' timestamps."""
    return f"1600000000.{next(_thread_numbers):06d}"


class BenchmarkError(RuntimeError):
    """The app under test did something other than the scenario expects: stop, never time it."""


def bot_config(*, stream: bool = False) -> Config:
    """Every tool of tests.tools_for_tests needs approval; history_limit stays at its default.

    Streaming is off unless asked for: scenarios 1 to 6 compare the bot with baselines that
    post each answer whole, and wait for that chat.postMessage; only scenarios 7 and 8, which
    measure what a streaming bot shows first, turn it on.
    """
    return Config(
        agent=AgentConfig(stream=stream),
        tools=ToolsConfig(modules=["tests.tools_for_tests"]),
        approvals=ApprovalsConfig(approvers=[APPROVER]),
    )


def _text_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def model_reply(body: dict[str, Any]) -> Reply:
    """A tool call for the delete request, the final answer after its output, a few words for
    the few-words request, else "ok"."""
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else items
    if isinstance(last, dict) and last.get("type") == "function_call_output":
        return text_reply(FINAL_ANSWER)
    text = _text_of(last)
    if DELETE_REQUEST in text:
        return tool_calls_reply(("delete_customer", {"customer_id": "c42"}))
    if FEW_WORDS_REQUEST in text:
        return text_reply(FEW_WORDS_ANSWER)
    return text_reply(DEFAULT_TEXT)


@dataclass
class Fakes:
    slack: FakeSlackAPI
    model: FakeModelServer

    def forget(self) -> None:
        """Drop what the fakes recorded, so waiting never scans a long list of old calls."""
        self.slack.reset()
        self.model.clear_records()

    async def wait_call(
        self,
        method: str,
        where: Callable[[RecordedCall], bool],
        *,
        count: int = 1,
        within: float = 60.0,
    ) -> list[RecordedCall]:
        """The fake notifies on every call it records: this waits, it never polls."""
        try:
            return await self.slack.wait_for(method, where=where, count=count, timeout=within)
        except AssertionError as exc:
            raise BenchmarkError(str(exc)[:2000]) from None

    async def wait_post(
        self, where: Callable[[RecordedCall], bool], *, count: int = 1, within: float = 60.0
    ) -> list[RecordedCall]:
        return await self.wait_call("chat.postMessage", where, count=count, within=within)

    @contextmanager
    def paced_model(self, *, first_token_delay: float, token_delay: float) -> Iterator[None]:
        """The model writes its answer over time, as a real one does, for this block only:
        the other scenarios keep a model that answers at once."""
        model = self.model
        before = (model.first_token_delay, model.token_delay)
        model.first_token_delay, model.token_delay = first_token_delay, token_delay
        try:
            yield
        finally:
            model.first_token_delay, model.token_delay = before


@asynccontextmanager
async def running_fakes(*, model_latency: float = 0.0) -> AsyncIterator[Fakes]:
    """`model_latency`: seconds the fake model takes per call; 0 shows the apps' own work."""
    async with FakeSlackAPI() as slack, FakeModelServer() as model:
        if model_latency > 0:

            async def slow_reply(body: dict[str, Any]) -> Reply:
                await asyncio.sleep(model_latency)
                return model_reply(body)

            model.respond_with(slow_reply)
        else:
            model.respond_with(model_reply)
        yield Fakes(slack, model)


def in_thread(thread_ts: str, text: str | None = None) -> Callable[[RecordedCall], bool]:
    def matches(call: RecordedCall) -> bool:
        if str(call.args.get("thread_ts")) != thread_ts:
            return False
        return text is None or call.args.get("text") == text

    return matches


def in_threads(threads: set[str]) -> Callable[[RecordedCall], bool]:
    return lambda call: str(call.args.get("thread_ts")) in threads


@dataclass
class Endpoint:
    """One app under test, reachable at `url` (its POST /slack/events), or at each of `urls` in
    turn (round-robin) when several processes of it share one database."""

    name: str
    url: str
    http: aiohttp.ClientSession
    requests: SlackRequestBuilder
    idle: Callable[[], Awaitable[None]]
    threadgate: Threadgate | None = None  # set when the bot is served in this process
    approvals: bool = False  # the bot: a delete request pauses for approval, a click resumes it
    urls: tuple[str, ...] = ()
    sent: int = 0

    def _next_url(self) -> str:
        if not self.urls:
            return self.url
        url = self.urls[self.sent % len(self.urls)]
        self.sent += 1
        return url

    async def post(self, request: SignedRequest) -> float:
        """Send one signed request; returns the seconds until its HTTP response was read."""
        url = self._next_url()
        start = time.perf_counter()
        async with self.http.post(url, data=request.body, headers=request.headers) as response:
            await response.read()
            status = response.status
        elapsed = time.perf_counter() - start
        if status != 200:
            raise BenchmarkError(f"{self.name} answered {status} to a valid request")
        return elapsed


def build_bot(
    *, slack_url: str, bot_token: str, model_url: str, database_url: str, stream: bool = False
) -> Threadgate:
    """The bot as `python -m bot` builds it, model client included, pointed at the fakes."""
    values: dict[str, Any] = {
        "slack_bot_token": SecretStr(bot_token),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": slack_url,
        "openai_api_key": SecretStr("sk-benchmark"),
        "openai_base_url": model_url,
        "database_url": database_url,
        "log_level": "WARNING",
        "sweep_interval": 3600.0,
        "drain_timeout": 10.0,
    }
    settings = Settings(_env_file=None, **values)
    client = build_slack_client(bot_token, base_url=slack_url, backoff_factor=0.01)
    return build_app(settings, config=bot_config(stream=stream), slack_client=client)


def request_builder(slack: FakeSlackAPI) -> SlackRequestBuilder:
    return SlackRequestBuilder(
        SIGNING_SECRET, team_id=slack.team_id, bot_user_id=slack.bot_user_id, bot_id=slack.bot_id
    )


@asynccontextmanager
async def bot_endpoint(
    fakes: Fakes, database_url: str, *, stream: bool = False
) -> AsyncIterator[Endpoint]:
    app = build_bot(
        slack_url=fakes.slack.base_url,
        bot_token=fakes.slack.bot_token,
        model_url=fakes.model.base_url,
        database_url=database_url,
        stream=stream,
    )
    async with served(build_web_app(app)) as url:
        await app.start()
        gc.collect()  # as `python -m bot` does once it is ready
        gc.freeze()
        try:
            async with aiohttp.ClientSession() as http:
                yield Endpoint(
                    "bot", url, http, request_builder(fakes.slack), _idle(app), app, approvals=True
                )
        finally:
            await app.stop(drain_timeout=10)


def _idle(app: Threadgate) -> Callable[[], Awaitable[None]]:
    return app.background.idle


def baseline_name(kind: BaselineKind) -> str:
    return "baseline" if kind == "openai" else "baseline-sdk"


@asynccontextmanager
async def baseline_endpoint(fakes: Fakes, kind: BaselineKind = "openai") -> AsyncIterator[Endpoint]:
    baseline = Baseline(
        slack_url=fakes.slack.base_url,
        bot_token=fakes.slack.bot_token,
        signing_secret=SIGNING_SECRET,
        model=fakes.model.client(),
        kind=kind,
    )
    async with served(baseline.web_app()) as url, aiohttp.ClientSession() as http:
        yield Endpoint(baseline_name(kind), url, http, request_builder(fakes.slack), baseline.idle)


def build_memory_sdk(*, slack_url: str, bot_token: str, model: "AsyncOpenAI") -> "InMemoryBot":
    """The in-memory bot on the bot's own config (tools, policy, agent), streaming off."""
    from benchmarks.memory_sdk import InMemoryBot

    return InMemoryBot(
        slack_url=slack_url,
        bot_token=bot_token,
        signing_secret=SIGNING_SECRET,
        model=model,
        config=bot_config(),
    )


@asynccontextmanager
async def memory_sdk_endpoint(fakes: Fakes) -> AsyncIterator[Endpoint]:
    from benchmarks.memory_sdk import NAME

    app = build_memory_sdk(
        slack_url=fakes.slack.base_url, bot_token=fakes.slack.bot_token, model=fakes.model.client()
    )
    async with served(app.web_app()) as url, aiohttp.ClientSession() as http:
        yield Endpoint(NAME, url, http, request_builder(fakes.slack), app.idle, approvals=True)

"""The one wiring place: settings and config in, a ready-to-serve threadgate out."""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.ack_first import AckFirst
from bot.agent import build_runs, check_policy_tools, load_tool_modules
from bot.approvals import Approvals
from bot.background import Background, new_ref
from bot.builtin_tools import SENSITIVE, slack_tools
from bot.config import Config, load_config
from bot.conversations import Conversations
from bot.interruptions import Interruptions
from bot.listeners import actions, commands, events, views
from bot.policy import Policy
from bot.settings import Settings
from bot.slack_client import build_slack_client
from bot.sweeper import Sweeper
from bot.thread_queue import ThreadQueue
from bot.thread_replies import ThreadReplies
from bot.user_groups import UserGroups
from storage import repositories as repo
from storage import schema
from storage.database import Database
from storage.models import JobKind, JobStatus

if TYPE_CHECKING:
    from agents import Model

log = logging.getLogger(__name__)


@dataclass
class Health:
    migrated: bool = False
    slack_ok: bool = False
    bot_user_id: str | None = None
    team_id: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.migrated and self.slack_ok


@dataclass
class Threadgate:
    """Everything one process runs; `start` and `stop` bracket its life."""

    settings: Settings
    config: Config
    db: Database
    client: AsyncWebClient
    bolt: AsyncApp
    background: Background
    queue: ThreadQueue
    conversations: Conversations
    approvals: Approvals
    interruptions: Interruptions
    sweeper: Sweeper
    policy: Policy
    ack_first: AckFirst
    health: Health = field(default_factory=Health)
    _sweeper_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.client.session is None or self.client.session.closed:
            # One pooled HTTP session for every Web API call instead of one per call.
            self.client.session = aiohttp.ClientSession()
        if self.settings.migrate_on_start:
            await schema.upgrade_if_behind(self.db)
        elif not await schema.is_up_to_date(self.db):
            raise RuntimeError("the database schema is behind: run `python -m bot migrate`")
        await repo.check_stored_data_opens(self.db)
        self.health.migrated = True
        if self.db.is_sqlite:
            # SQLite serves one process, so a lease left behind is a crashed predecessor's.
            await repo.release_all_leases(self.db)
        response = await self.client.auth_test()
        self.health.bot_user_id = response.get("user_id")
        self.health.team_id = response.get("team_id")
        self.health.slack_ok = True
        # Leftovers of an earlier life (queued work, dead owners) are picked up before serving.
        await self.sweeper.sweep_safely()
        if self._sweeper_task is None:
            self._sweeper_task = asyncio.create_task(self.sweeper.run(), name="sweeper")
        log.info("threadgate ready as %s in %s", self.health.bot_user_id, self.health.team_id)

    async def stop(self, *, drain_timeout: float | None = None) -> bool:
        """Finish or hand back running work, then let go of the database."""
        self.health.slack_ok = False
        timeout = self.settings.drain_timeout if drain_timeout is None else drain_timeout
        finished = await self.background.drain(timeout)
        if self._sweeper_task is not None:
            self._sweeper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper_task
        await self.conversations.inbox.close()
        await self.conversations.runs.close()
        if self.client.session is not None:
            await self.client.session.close()
        await self.db.dispose()
        return finished


class ExecutionLedger:
    """The agent's tools claim approved calls here, in the same database as the approvals."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, *, run_id: str, call_id: str) -> tuple[bool, str | None]:
        return await repo.claim_execution(self.db, run_id=run_id, call_id=call_id)

    async def record(self, *, run_id: str, call_id: str, output: str) -> None:
        await repo.record_outcome(self.db, run_id=run_id, call_id=call_id, outcome=output)


async def on_bolt_error(error: Exception) -> BoltResponse:
    """A request no listener takes is a quiet 404; anything else that fails in Bolt is a 500.

    Bolt's default for the first logs a warning with sample listener code for every such
    request, which anyone who can reach the URL with a signed body could fill the logs with.
    """
    if isinstance(error, BoltUnhandledRequestError):
        return BoltResponse(status=404, body="")
    ref = new_ref()
    log.error("request failed in Bolt (ref %s)", ref, exc_info=error)
    return BoltResponse(status=500, body={"error": "internal error", "ref": ref})


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_app(
    settings: Settings,
    *,
    config: Config | None = None,
    slack_client: AsyncWebClient | None = None,
    model: "Model | None" = None,
) -> Threadgate:
    """Build without I/O: nothing connects until `start`. Tests pass their own client and model."""
    config = config if config is not None else load_config(settings.threadgate_config)
    db = Database(settings.database_url, cipher=settings.cipher)
    client = slack_client or build_slack_client(
        settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    tools = load_tool_modules(config.tools.modules, config_path=settings.threadgate_config)
    builtins = slack_tools(client)
    for name in config.tools.builtins:
        tools[name] = builtins[name]
    check_policy_tools(config, tools, config_path=settings.threadgate_config)
    policy = Policy.from_config(
        config.approvals,
        tool_defaults={name: SENSITIVE[name] for name in config.tools.builtins},
    )
    runs = build_runs(
        config,
        tools,
        policy,
        db=db,
        ledger=ExecutionLedger(db),
        cipher=db.cipher,
        model=model,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
    )

    background = Background()
    ack_first = AckFirst()
    queue = ThreadQueue(
        db,
        background,
        owner=process_owner(),
        lease=timedelta(seconds=settings.lease_seconds),
        history_limit=config.agent.history_limit,
        ack_first=ack_first,
        max_workers=settings.max_workers,
    )
    replies = ThreadReplies(client)
    approvals = Approvals(
        db,
        client=client,
        replies=replies,
        runs=runs,
        policy=policy,
        groups=UserGroups(client),
        kick=queue.kick,
    )
    conversations = Conversations(
        db,
        runs=runs,
        approvals=approvals,
        replies=replies,
        kick=queue.kick,
    )

    async def handle_job(step: repo.Step) -> JobStatus:
        if step.job.kind == JobKind.RESUME:
            return await approvals.handle_resume(step.job, step.resume)
        assert step.run is not None
        return await conversations.handle_message(step.job, step.run)

    queue.handler = handle_job
    interruptions = Interruptions(
        db, client=client, replies=replies, approvals=approvals, kick=queue.kick
    )
    queue.on_interrupted = interruptions.stopped

    secret = settings.slack_signing_secret
    bolt = AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret is not None else "",
        request_verification_enabled=not settings.socket_mode,
        process_before_response=True,
        raise_error_for_unhandled_request=True,
        logger=logging.getLogger("threadgate.bolt"),
    )
    bolt.error(on_bolt_error)
    app = Threadgate(
        settings=settings,
        config=config,
        db=db,
        client=client,
        bolt=bolt,
        background=background,
        queue=queue,
        conversations=conversations,
        approvals=approvals,
        interruptions=interruptions,
        sweeper=Sweeper(
            approvals=approvals,
            interruptions=interruptions,
            db=db,
            kick=queue.kick,
            interval=settings.sweep_interval,
            retention=config.storage,
        ),
        policy=policy,
        ack_first=ack_first,
    )
    events.register(bolt, app)
    actions.register(bolt, app)
    views.register(bolt, app)
    commands.register(bolt, app)
    return app

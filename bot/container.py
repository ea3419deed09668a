"""What one process runs, held together; `start` and `stop` bracket its life.

Built by `bot.app.build_app`; lives apart from the wiring so that what serves requests can
name it without importing the wiring.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.agents_by_team import AgentsByTeam
from bot.agent.build import check_policy_tools
from bot.agent.mcp_servers import McpServers
from bot.agent.runs import AgentRuns
from bot.approvals.approvals import Approvals
from bot.approvals.policy import Policy
from bot.config import Config, ConfigError
from bot.metrics import Metrics
from bot.runtime.ack_first import AckFirst
from bot.runtime.background import Background
from bot.runtime.conversations import Conversations
from bot.runtime.interruptions import Interruptions
from bot.runtime.outbox import Outbox
from bot.runtime.sweeper import Sweeper
from bot.runtime.thread_queue import ThreadQueue
from bot.settings import Settings
from bot.slack.install import InstallFlow
from bot.slack.workspaces import Workspaces
from bot.tracing import Tracing
from storage import schema
from storage.database import Database
from storage.queue import release_all_leases
from storage.sealed_columns import check_stored_data_opens

log = logging.getLogger(__name__)


async def open_database(db: Database, *, migrate: bool) -> None:
    """Up to date (migrated here, or refused), and readable with the configured keys."""
    if migrate:
        await schema.upgrade_if_behind(db)
    elif not await schema.is_up_to_date(db):
        raise RuntimeError("the database schema is behind: run `python -m bot migrate`")
    await check_stored_data_opens(db)


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
    outbox: Outbox
    runs: AgentRuns  # the top-level [agent]'s
    approvals: Approvals
    interruptions: Interruptions
    sweeper: Sweeper
    policy: Policy
    ack_first: AckFirst
    mcp: McpServers
    function_tools: Mapping[str, Any]
    workspaces: Workspaces
    # Each workspace's agent: its own [workspaces.T….agent], else `runs`.
    agents: AgentsByTeam
    metrics: Metrics = field(default_factory=Metrics)
    tracing: Tracing = field(default_factory=Tracing)
    # The "Add to Slack" flow; None with SLACK_BOT_TOKEN (one workspace, nothing to install).
    install: InstallFlow | None = None
    health: Health = field(default_factory=Health)
    _sweeper_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.client.session is None or self.client.session.closed:
            # One pooled HTTP session for every Web API call instead of one per call.
            self.client.session = aiohttp.ClientSession()
        self.outbox.client.session = self.client.session
        await open_database(self.db, migrate=self.settings.migrate_on_start)
        self.health.migrated = True
        if self.db.is_sqlite:
            # SQLite serves one process, so a lease left behind is a crashed predecessor's.
            await release_all_leases(self.db)
        if self.install is None:
            response = await self.client.auth_test()
            self.health.bot_user_id = response.get("user_id")
            self.health.team_id = response.get("team_id")
        # With OAuth there is no one token to test: each workspace's is checked as it is used.
        self.health.slack_ok = True
        await self.start_mcp()
        # Leftovers of an earlier life (queued work, dead owners) are picked up before serving.
        await self.sweeper.sweep_safely()
        if self._sweeper_task is None:
            self._sweeper_task = asyncio.create_task(self.sweeper.run(), name="sweeper")
        if self.install is None:
            log.info("threadgate ready as %s in %s", self.health.bot_user_id, self.health.team_id)
        else:
            log.info("threadgate ready for every workspace that installs it")

    async def start_mcp(self) -> None:
        """Servers that are down do not stop start-up; a clash among those that are up does,
        and so does a policy naming a tool that nothing offers once every server is up."""
        if not self.mcp.connections:
            return
        await self.mcp.start()
        offered = {**self.function_tools, **dict.fromkeys(self.mcp.tool_names())}
        try:
            check_policy_tools(
                self.config,
                offered,
                config_path=self.settings.threadgate_config,
                elsewhere=not self.mcp.all_up(),
            )
        except ConfigError:
            await self.mcp.stop()
            raise

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
        await self.mcp.stop()
        await self.agents.close()
        if self.client.session is not None:
            await self.client.session.close()
        await self.db.dispose()
        # Exports the spans still buffered, off the loop: the export is a blocking HTTP call.
        await asyncio.to_thread(self.tracing.shutdown)
        return finished

"""One console conversation: built from the same parts as the bot, with no Slack.

Each line read is a message of one conversation (team and channel "console", a thread of its
own per session), queued and run through the thread queue as a Slack message is, so runs,
approvals, the execution ledger and the decision log land in the configured database alike.
"""

import asyncio
import dataclasses
import functools
import logging
import sys
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from bot.agent.build import build_agents, configured_tools
from bot.agent.builtin_tools import SENSITIVE, slack_tools_unavailable
from bot.agent.runs import AgentRuns
from bot.app import process_owner
from bot.approvals.deciding import CallPolicies
from bot.approvals.policy import Policy
from bot.config import Config, ConfigError, load_config
from bot.console.approver import ConsoleApprover
from bot.console.terminal import Terminal
from bot.console.worker import ConsoleWorker
from bot.container import open_database
from bot.log_redaction import configure_logging, quiet_model_errors
from bot.runtime.ack_first import AckFirst
from bot.runtime.background import Background
from bot.runtime.thread_queue import ThreadQueue
from bot.settings import ConsoleSettings
from storage.crypto import DecryptionError
from storage.database import Database, driver_threads_finished
from storage.ids import ThreadRef
from storage.messages import Accepted, IncomingRow, accept_messages
from storage.outbox import Claimant
from storage.runs import run_requesters

log = logging.getLogger(__name__)

CONSOLE = "console"  # the team and the channel of console conversations
NO_SLACK = "This tool needs Slack, and the console has no Slack connection: tell the user so."
WELCOME = "threadgate console: type a message and press Enter; Ctrl-D ends."


def slack_ts(after: str | None = None) -> str:
    """A ts shaped like Slack's (fixed width, so text order is time order), after `after`."""
    now = time.time()
    if after is not None:
        now = max(now, float(after) + 0.000001)
    return f"{now:017.6f}"


async def no_group_members(_groups: Iterable[str]) -> Mapping[str, Collection[str]]:
    """No Slack to ask: a rule about a user group's members cannot be evaluated, and fails
    closed."""
    return {}


@dataclasses.dataclass
class Console:
    settings: ConsoleSettings
    db: Database
    runs: AgentRuns
    queue: ThreadQueue
    background: Background
    terminal: Terminal
    thread: ThreadRef

    async def converse(self) -> int:
        try:
            await open_database(self.db, migrate=self.settings.migrate_on_start)
        except DecryptionError as exc:
            self.terminal.fail(f"{exc}: check THREADGATE_ENCRYPTION_KEY")
            return 1
        except (RuntimeError, OSError, SQLAlchemyError) as exc:
            self.terminal.fail(f"the database is not usable: {_one_line(exc)}")
            return 1
        if self.terminal.interactive:
            self.terminal.say(WELCOME)
        prompt = "> " if self.terminal.interactive else ""
        last_ts = self.thread.thread_ts
        while (line := await self.terminal.read(prompt)) is not None:
            if not line.strip():
                continue
            last_ts = slack_ts(after=last_ts)
            await self.say(line, last_ts)
        return 0

    async def say(self, text: str, ts: str) -> None:
        """Queue the line as a message of the conversation and wait for the queue to be done
        with it (answered, or paused with nobody left to decide)."""
        [accepted] = await accept_messages(
            self.db,
            [
                IncomingRow(
                    event_id=f"{CONSOLE}-{uuid.uuid4().hex}",
                    thread=self.thread,
                    user_id=self.settings.console_user,
                    message_ts=ts,
                    text=text,
                    only_known_thread=False,
                )
            ],
        )
        if accepted == Accepted.QUEUED:
            self.queue.kick(self.thread.key)
            await self.background.idle()

    async def close(self) -> None:
        await self.background.drain(0)
        await self.runs.close()
        await self.db.dispose()
        await driver_threads_finished()


def build_console(settings: ConsoleSettings, config: Config, terminal: Terminal) -> Console:
    """Build without I/O, like the bot: the tools and policy as configured, with no Slack."""
    quiet_model_errors()
    db = Database(settings.database_url, cipher=settings.cipher)
    tools = configured_tools(
        config, slack_tools_unavailable(NO_SLACK), config_path=settings.threadgate_config
    )
    policy = Policy.from_config(
        config.approvals,
        tool_defaults={name: SENSITIVE[name] for name in config.tools.builtins},
    )
    policies = CallPolicies(
        policy, requesters=functools.partial(run_requesters, db), members=no_group_members
    )
    # The console speaks as the top-level `[agent]`.
    runs = build_agents(config, tools, policies, db=db, settings=settings, model=None).default
    owner = process_owner()
    lease = timedelta(seconds=settings.lease_seconds)
    claimant = Claimant(owner, lease)
    background = Background()
    queue = ThreadQueue(
        db,
        background,
        owner=owner,
        lease=lease,
        history_limit=config.agent.history_limit,
        ack_first=AckFirst(),
        max_workers=1,
    )
    approver = ConsoleApprover(
        db,
        terminal=terminal,
        user_id=settings.console_user,
        schemas=lambda name: tools[name].params_json_schema if name in tools else None,
        by=claimant,
    )
    worker = ConsoleWorker(
        db, runs=runs, policies=policies, approver=approver, terminal=terminal, by=claimant
    )
    queue.handler = worker.handle
    return Console(
        settings=settings,
        db=db,
        runs=runs,
        queue=queue,
        background=background,
        terminal=terminal,
        thread=ThreadRef(CONSOLE, CONSOLE, slack_ts()),
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def run(settings: ConsoleSettings) -> int:
    """Exit 0 at the end of input, 2 for a bad config, 1 when the database is not usable,
    130 on Ctrl-C."""
    configure_logging(settings)
    terminal = Terminal(sys.stdin.fileno(), sys.stdout, sys.stderr, interactive=sys.stdin.isatty())
    try:
        console = build_console(settings, load_config(settings.threadgate_config), terminal)
    except ConfigError as exc:
        terminal.fail(f"config {exc}")
        return 2

    async def main() -> int:
        try:
            return await console.converse()
        finally:
            await console.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        terminal.say("")
        return 130

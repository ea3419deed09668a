"""The one wiring place: settings and config in, a ready-to-serve threadgate out."""

import functools
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.build import build_agents, build_mcp_servers, configured_tools
from bot.agent.builtin_tools import SENSITIVE, slack_tools
from bot.approvals.approvals import Approvals
from bot.approvals.deciding import CallPolicies
from bot.approvals.inbox import HomeInbox
from bot.approvals.policy import Policy
from bot.approvals.thread_approvals import ThreadApprovals
from bot.config import AgentConfig, Config, load_config
from bot.container import Threadgate
from bot.log_redaction import quiet_model_errors
from bot.metrics import Metrics
from bot.runtime.ack_first import AckFirst
from bot.runtime.answer_feedback import AnswerFeedback
from bot.runtime.background import Background
from bot.runtime.conversations import Conversations
from bot.runtime.interruptions import Interruptions
from bot.runtime.outbox import EVENT_TYPE, Outbox
from bot.runtime.sweeper import Sweeper
from bot.runtime.thread_context import ThreadContextReader
from bot.runtime.thread_queue import ThreadQueue
from bot.runtime.worker import PARKED_NOTE, ThreadWorker
from bot.settings import Settings
from bot.slack import thread_signs
from bot.slack.admins import Admins
from bot.slack.bolt_errors import on_bolt_error
from bot.slack.client import build_slack_client, count_calls, posting_client
from bot.slack.feedback import feedback_block
from bot.slack.install import build_install_flow
from bot.slack.listeners import (
    actions,
    agent_surface,
    commands,
    events,
    feedback,
    uninstall,
    views,
)
from bot.slack.listeners.after_ack import AfterAck
from bot.slack.permalinks import Permalinks
from bot.slack.replies import ThreadReplies
from bot.slack.suggested_prompts import SuggestedPrompts
from bot.slack.thread_files import FileLimits, FileReader
from bot.slack.thread_reader import ThreadReader
from bot.slack.thread_signs import ThreadSigns
from bot.slack.uninstalls import Uninstalls
from bot.slack.user_groups import UserGroups
from bot.slack.workspace_scope import within_request_workspace
from bot.slack.workspaces import Installations, OneWorkspace, WorkspaceClient, Workspaces
from bot.tracing import Tracing
from storage.database import Database
from storage.ids import ThreadRef
from storage.runs import run_requesters

if TYPE_CHECKING:
    from agents import Model

log = logging.getLogger(__name__)


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
    quiet_model_errors()
    metrics = Metrics()
    tracing = Tracing.exporting(
        settings.otel_exporter_otlp_endpoint, content=settings.trace_content
    )
    db = Database(
        settings.database_url,
        cipher=settings.cipher,
        tracer=tracing.tracer if tracing.enabled else None,
        on_error=lambda kind: metrics.database_errors.labels(kind=kind).inc(),
    )
    token = settings.slack_bot_token
    client = slack_client or build_slack_client(
        token.get_secret_value() if token is not None else None, base_url=settings.slack_api_url
    )
    count_calls(client, metrics)
    workspaces: Workspaces = OneWorkspace(client)
    installed: Installations | None = None
    if settings.slack_client_id is not None and settings.slack_client_secret is not None:
        installed = Installations(
            db,
            client,
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
        )
        workspaces = installed
        # Every component holds this one client; each call speaks for its work's workspace.
        client = installed.client = WorkspaceClient.over(client, installed)
    tools = configured_tools(config, slack_tools(client), config_path=settings.threadgate_config)
    tool_defaults: dict[str, bool] = {name: SENSITIVE[name] for name in config.tools.builtins}
    policy = Policy.from_config(config.approvals, tool_defaults=tool_defaults)
    # `[workspaces.T…]`: a policy of its own for each workspace that has approvals of its own.
    workspace_policies = {
        team: Policy.from_config(own.approvals, tool_defaults=tool_defaults)
        for team, own in config.workspaces.items()
        if own.approvals is not None
    }
    groups = UserGroups(client)
    policies = CallPolicies(
        policy,
        requesters=functools.partial(run_requesters, db),
        members=groups.readable,
        by_team=workspace_policies,
    )
    mcp = build_mcp_servers(
        config,
        tools,
        policies,
        config_path=settings.threadgate_config,
        retry_seconds=settings.mcp_retry_seconds,
        ping_seconds=settings.mcp_ping_seconds,
    )
    background = Background()
    ack_first = AckFirst()
    # `[workspaces.T….agent]`: each workspace with an agent of its own, by team id.
    own_agents = {team: own.agent for team, own in config.workspaces.items() if own.agent}
    owner = process_owner()
    lease = timedelta(seconds=settings.lease_seconds)
    permalinks = Permalinks(client)
    outbox = Outbox(
        db,
        posting_client(client),
        owner=owner,
        claim=lease,
        permalinks=permalinks,
        spawn=background.spawn,
    )
    queue = ThreadQueue(
        db,
        background,
        owner=owner,
        lease=lease,
        history_limit=config.agent.history_limit,
        history_limits={team: agent.history_limit for team, agent in own_agents.items()},
        ack_first=ack_first,
        max_workers=settings.max_workers,
    )
    replies = ThreadReplies(client)
    approvals = Approvals(
        db,
        client=client,
        replies=replies,
        outbox=outbox,
        policies=policies,
        groups=groups,
        kick=queue.kick,
        schemas=lambda name: tools[name].params_json_schema if name in tools else mcp.schema(name),
        mirror_to=config.approvals.mirror_to,
        metrics=metrics,
        tracing=tracing,
    )
    inbox = HomeInbox(
        db, client=client, approvals=approvals, permalinks=permalinks, background=background
    )
    approvals.on_change = inbox.changed
    threads = ThreadApprovals(db, approvals=approvals, outbox=outbox)
    agents = build_agents(
        config,
        tools,
        policies,
        db=db,
        settings=settings,
        model=model,
        thread_cover=threads,
        mcp=mcp,
        metrics=metrics,
        tracing=tracing,
    )
    signs = ThreadSigns(posting_client(client), spawn=background.spawn)

    def thinking(thread: ThreadRef, message_ts: str) -> None:
        metrics.jobs_queued.labels(kind="message").inc()
        signs.signal(
            thread,
            thread_signs.THINKING,
            message_ts=message_ts,
            loading=thread_signs.THINKING_MESSAGES,
        )

    conversations = Conversations(db, kick=queue.kick, on_queued=thinking)

    def reader(agent: AgentConfig) -> ThreadReader:
        limits = FileLimits(
            max_file_bytes=agent.max_file_bytes,
            max_image_bytes=agent.max_image_bytes,
            accepts_images=agent.accepts_images,
        )
        return ThreadReader(
            client,
            files=FileReader(client, limits),
            history_limit=agent.history_limit,
            own_event_type=EVENT_TYPE,
        )

    context_reader = ThreadContextReader(
        db,
        reader(config.agent),
        by_team={team: reader(agent) for team, agent in own_agents.items()},
    )
    worker = ThreadWorker(
        db,
        runs=agents,
        approvals=approvals,
        outbox=outbox,
        signs=signs,
        feedback=lambda run_id: [feedback_block(run_id)],
        stream=config.agent.stream,
        stream_by_team={team: agent.stream for team, agent in own_agents.items()},
        context_reader=context_reader,
        metrics=metrics,
        tracing=tracing,
    )
    queue.handler = worker.handle
    queue.parked_note = PARKED_NOTE
    interruptions = Interruptions(
        db, replies=replies, approvals=approvals, outbox=outbox, kick=queue.kick, metrics=metrics
    )
    queue.on_interrupted = interruptions.stopped

    install = None
    authorize = None
    if installed is not None:
        authorize = installed.bolt_authorize()
        install = build_install_flow(settings, db, client)
    secret = settings.slack_signing_secret
    bolt = AsyncApp(
        client=client,
        authorize=cast(Any, authorize),  # Bolt's type has no None: it refuses the request
        signing_secret=secret.get_secret_value() if secret is not None else "",
        request_verification_enabled=not settings.socket_mode,
        process_before_response=True,
        raise_error_for_unhandled_request=True,
        logger=logging.getLogger("threadgate.bolt"),
    )
    bolt.use(within_request_workspace)
    events.register(bolt, conversations=conversations)
    uninstall.register(bolt, uninstalls=Uninstalls(db, workspaces))
    after_ack = AfterAck(background, replies)
    actions.register(
        bolt,
        approvals=approvals,
        interruptions=interruptions,
        replies=replies,
        after_ack=after_ack,
        home=inbox.publish,
    )
    actions.register_thread_approvals(
        bolt, threads=threads, replies=replies, after_ack=after_ack, home=inbox.publish
    )
    views.register(bolt, approvals=approvals, after_ack=after_ack)
    answer_feedback = AnswerFeedback(db, replies=replies, policies=policies, groups=groups)
    feedback.register(bolt, feedback=answer_feedback, after_ack=after_ack)
    commands.register(
        bolt,
        policies=policies,
        tool_names=lambda: agents.default.tool_names,
        mcp_servers=mcp.status,
        feedback=answer_feedback,
        approvals=approvals,
        admins=Admins(
            config.admin.users,
            groups,
            by_team={t: own.admin.users for t, own in config.workspaces.items() if own.admin},
        ),
        background=background,
        permalinks=permalinks,
    )
    prompts = SuggestedPrompts(
        client,
        config.agent.suggested_prompts,
        config.agent.suggested_prompts_title,
        by_team=own_agents,
    )
    agent_surface.register(bolt, prompts=prompts, background=background, home=inbox.publish)
    bolt.error(on_bolt_error)
    return Threadgate(
        settings=settings,
        config=config,
        db=db,
        client=client,
        bolt=bolt,
        background=background,
        queue=queue,
        conversations=conversations,
        runs=agents.default,
        agents=agents,
        approvals=approvals,
        interruptions=interruptions,
        outbox=outbox,
        sweeper=Sweeper(
            approvals=approvals,
            interruptions=interruptions,
            outbox=outbox,
            db=db,
            kick=queue.kick,
            interval=settings.sweep_interval,
            retention=config.storage,
        ),
        policy=policy,
        ack_first=ack_first,
        mcp=mcp,
        function_tools=tools,
        metrics=metrics,
        tracing=tracing,
        workspaces=workspaces,
        install=install,
    )

"""Builds the Agent from the admin's config: its model, its tools, and their approval policy."""

import dataclasses
import importlib
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from agents import Agent, FunctionTool, Model, RunContextWrapper, Tool
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from agents.tool_context import ToolContext
from openai import AsyncOpenAI

from bot.agent import ledger as ledgers
from bot.agent import openai_request_transform
from bot.agent.agents_by_team import AgentsByTeam
from bot.agent.mcp_servers import McpConnection, McpServers, ToolNames, resolve_servers
from bot.agent.runs import AgentRuns
from bot.agent.sdk_traces import route_sdk_traces
from bot.agent.timed_model import TimedModel
from bot.approvals.deciding import CallPolicies
from bot.approvals.policy import CallPolicy
from bot.config import THREAD_WITH_QUORUM, ApprovalsConfig, Config, ConfigError, rule_key
from bot.metrics import Metrics
from bot.settings import CoreSettings
from bot.tracing import Tracing
from storage.approvals import ExecutionClaim
from storage.database import Database


def load_tool_modules(modules: list[str], *, config_path: Path | None) -> dict[str, FunctionTool]:
    """Import each admin module and collect its `TOOLS`; a broken module stops start-up."""
    tools: dict[str, FunctionTool] = {}
    for index, name in enumerate(modules):
        key = f"tools.modules.{index}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(config_path, key, f"cannot import {name!r}: {exc}") from None
        exported = getattr(module, "TOOLS", None)
        if not isinstance(exported, list):
            raise ConfigError(config_path, key, f"module {name!r} has no TOOLS list")
        for tool in exported:
            if not isinstance(tool, FunctionTool):
                raise ConfigError(
                    config_path, key, f"{name}.TOOLS holds {tool!r}, which is not a function tool"
                )
            if tool.name in tools:
                raise ConfigError(config_path, key, f"tool {tool.name!r} is defined twice")
            tools[tool.name] = tool
    return tools


def configured_tools(
    config: Config, builtins: Mapping[str, FunctionTool], *, config_path: Path | None
) -> dict[str, FunctionTool]:
    """The admin's modules' tools and the built-ins they switched on, each one that the
    policy names present."""
    tools = load_tool_modules(config.tools.modules, config_path=config_path)
    for name in config.tools.builtins:
        tools[name] = builtins[name]
    # A name no function tool has may be an MCP tool: `Threadgate.start` checks again then.
    check_policy_tools(config, tools, config_path=config_path, elsewhere=bool(config.tools.mcp))
    return tools


def check_policy_tools(
    config: Config,
    tools: Mapping[str, Any],
    *,
    config_path: Path | None,
    elsewhere: bool = False,
) -> None:
    """Every tool a table or a rule names exists, and what a rule takes from a tool's table
    still makes sense with what the rule sets. With `elsewhere`, a name may belong to an MCP
    server that is not up yet: it is not an error (a table for a tool nobody offers decides
    nothing). Each `[workspaces.T…]` table is checked as its workspace's effective config."""
    _check_policy_tools_of(config.approvals, tools, config_path=config_path, elsewhere=elsewhere)
    for team_id, own in config.workspaces.items():
        if own.approvals is None:
            continue
        try:
            _check_policy_tools_of(
                own.approvals, tools, config_path=config_path, elsewhere=elsewhere
            )
        except ConfigError as exc:
            raise ConfigError(config_path, f"workspaces.{team_id}.{exc.key}", exc.reason) from None


def _check_policy_tools_of(
    approvals: ApprovalsConfig,
    tools: Mapping[str, Any],
    *,
    config_path: Path | None,
    elsewhere: bool,
) -> None:
    for name in approvals.tools:
        if name not in tools and not elsewhere:
            raise ConfigError(
                config_path,
                f"approvals.tools.{name}",
                "no loaded tool has this name (check [tools] modules, builtins and mcp)",
            )
    for index, rule in enumerate(approvals.rules):
        number = index + 1
        for position, name in enumerate(rule.tools):
            if name != "*" and name not in tools and not elsewhere:
                raise ConfigError(
                    config_path,
                    rule_key(index, "tools", str(position)),
                    f"rule {number}: no loaded tool is named {name!r} "
                    "(check [tools] modules, builtins and mcp)",
                )
        names = list(tools) if rule.tools == ["*"] else rule.tools
        for name in names:
            table = approvals.tools.get(name)
            needed = rule.approvals_needed or (table.approvals_needed if table else 1)
            for_thread = rule.allow_for_thread
            if for_thread is None:
                for_thread = table.allow_for_thread if table else False
            if for_thread and needed > 1:
                key = "allow_for_thread" if rule.allow_for_thread else "approvals_needed"
                raise ConfigError(
                    config_path,
                    rule_key(index, key),
                    f"rule {number}: {THREAD_WITH_QUORUM} (for {name!r}, with its own table)",
                )


class ThreadCover(Protocol):
    """Where a call that needs approval may find a thread approval that lets it run now."""

    async def covers(
        self,
        context: Mapping[str, Any],
        *,
        call_id: str,
        tool_name: str,
        arguments: Mapping[str, Any],
        policy: CallPolicy,
    ) -> bool: ...


class ExecutionLedger(Protocol):
    """Where approved calls are claimed before they start and their output is recorded."""

    async def claim(self, *, run_id: str, call_id: str) -> ExecutionClaim: ...

    async def record(self, *, run_id: str, call_id: str, output: str) -> None: ...


def not_run_again(recorded: str | None) -> str:
    if recorded is not None:
        return recorded
    return (
        "This approved call was already started once, before the bot was interrupted, so it "
        "was not run again. Whether it finished is unknown: say so to the user."
    )


EDITED_NOTE = "Ran with arguments edited by an approver: "


def ran_with_edits(arguments: str, output: Any) -> str:
    """The model asked for other arguments than the ones that ran: its next turn must know."""
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    return f"{EDITED_NOTE}{arguments}\n\n{text}"


def _context(ctx: RunContextWrapper[Any]) -> dict[str, Any]:
    return ctx.context if isinstance(ctx.context, dict) else {}


NeedsApproval = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]


def with_policy(
    tool: FunctionTool,
    policies: CallPolicies,
    ledger: ExecutionLedger | None = None,
    thread_cover: ThreadCover | None = None,
    *,
    gate: bool | NeedsApproval = True,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> FunctionTool:
    """Route the SDK's approval question to our policy, always answering a strict bool: the
    call's arguments, the thread's channel and the run's requesters decide.

    A call the policy says needs approval runs without a card when an active thread approval
    of its thread, tool and rule covers it (`thread_cover` stores it as approved, and owes
    the thread its post, before answering).

    With a ledger, an approved call starts at most once: the SDK would run it again on a
    second resume of the same state, so the claim in the database is what makes it once. An
    approver may have edited the call's arguments: those run instead of the model's (they come
    back with the claim, so the claim still makes it once), and the output says so.

    `gate` is asked first: for an MCP tool it is the SDK's own `require_approval` answer
    (which our policy gives per tool); the policy then decides the call with its arguments.
    """
    name = tool.name
    invoke_tool = tool.on_invoke_tool
    policy = policies.policy

    async def needs_approval(
        ctx: RunContextWrapper[Any], args: dict[str, Any], call_id: str
    ) -> bool:
        if not await _asked(gate, ctx, args, call_id):
            return False
        context = _context(ctx)
        decided = await policies.decide(
            name,
            args,
            channel_id=_text(context.get("channel_id")),
            run_id=_text(context.get("run_id")),
        )
        if not decided.required:
            return False
        if thread_cover is None:
            return True
        covered = await thread_cover.covers(
            context, call_id=call_id, tool_name=name, arguments=args, policy=decided
        )
        return not covered

    traced = tracing or Tracing()
    counted = metrics.tool_calls if metrics is not None else None

    async def invoke_observed(ctx: ToolContext[Any], arguments: str) -> Any:
        outcome = "error"
        try:
            with traced.span("threadgate.tool_call", tool=name, call_id=ctx.tool_call_id):
                output = await invoke_once(ctx, arguments)
            outcome = "ok"
            return output
        finally:
            if counted is not None:
                counted.labels(tool=name, outcome=outcome).inc()

    async def invoke_once(ctx: ToolContext[Any], arguments: str) -> Any:
        run_id = _context(ctx).get("run_id")
        if ledger is None or not run_id or not policy.may_need_approval(name):
            return await invoke_tool(ctx, arguments)
        claim = await ledger.claim(run_id=run_id, call_id=ctx.tool_call_id)
        if not claim.may_run:
            return not_run_again(claim.recorded)
        edited = claim.edited_arguments
        if edited is not None:
            output = ran_with_edits(edited, await invoke_tool(ctx, edited))
        else:
            output = await invoke_tool(ctx, arguments)
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        await ledger.record(run_id=run_id, call_id=ctx.tool_call_id, output=text)
        return output

    return dataclasses.replace(tool, needs_approval=needs_approval, on_invoke_tool=invoke_observed)


async def _asked(
    gate: bool | NeedsApproval, ctx: RunContextWrapper[Any], args: dict[str, Any], call_id: str
) -> bool:
    if isinstance(gate, bool):
        return gate
    answer = gate(ctx, args, call_id)
    return bool(await answer) if inspect.isawaitable(answer) else bool(answer)


@dataclasses.dataclass
class GovernedAgent(Agent[Any]):
    """An agent whose MCP tools are governed like its function tools.

    `get_mcp_tools` is the SDK's public step that lists the servers' tools and converts them
    (names, schemas, and the recipient bindings a paused run is checked against on resume);
    each converted tool is then wrapped as a function tool is: the policy decides each call
    with its arguments, and the ledger claims an approved call before it reaches the server,
    with an approver's edited arguments (what the server then receives). `call_tool` on a
    server subclass would be too late for that: it is told neither the run nor the call id.
    """

    govern: Callable[[FunctionTool], FunctionTool] | None = None

    async def get_mcp_tools(self, run_context: RunContextWrapper[Any]) -> list[Tool]:
        tools = await super().get_mcp_tools(run_context)
        if self.govern is None:
            return tools
        return [self.govern(t) if isinstance(t, FunctionTool) else t for t in tools]


def build_mcp_servers(
    config: Config,
    tools: Mapping[str, FunctionTool],
    policies: CallPolicies,
    *,
    config_path: Path | None,
    retry_seconds: float = 1.0,
    ping_seconds: float = 15.0,
    environ: Mapping[str, str] | None = None,
) -> McpServers:
    """The SDK's `require_approval`, in its callable form, is our policy's answer per tool."""
    specs = resolve_servers(
        config.tools.mcp,
        config_path=config_path,
        environ=os.environ if environ is None else environ,
    )
    names = ToolNames(tools)
    policy = policies.policy

    def may_need_approval(_ctx: RunContextWrapper[Any], _agent: Any, tool: Any) -> bool:
        return policy.may_need_approval(str(tool.name))

    connections = [
        McpConnection(
            spec,
            names,
            require_approval=may_need_approval,
            retry_seconds=retry_seconds,
            ping_seconds=ping_seconds,
        )
        for spec in specs
    ]
    return McpServers(connections, names, config_path=config_path)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build_model(config: Config, client: AsyncOpenAI) -> Model:
    if config.agent.api == "chat_completions":
        return OpenAIChatCompletionsModel(model=config.agent.model, openai_client=client)
    return OpenAIResponsesModel(model=config.agent.model, openai_client=client)


def build_agent(
    config: Config,
    tools: Mapping[str, FunctionTool],
    policies: CallPolicies,
    model: Model,
    ledger: ExecutionLedger | None = None,
    thread_cover: ThreadCover | None = None,
    mcp: McpServers | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> Agent[Any]:
    agent_tools: list[Tool] = [
        with_policy(tool, policies, ledger, thread_cover, metrics=metrics, tracing=tracing)
        for tool in tools.values()
    ]

    def govern(tool: FunctionTool) -> FunctionTool:
        return with_policy(
            tool,
            policies,
            ledger,
            thread_cover,
            gate=tool.needs_approval,
            metrics=metrics,
            tracing=tracing,
        )

    return GovernedAgent(
        name=config.agent.name,
        instructions=config.agent.instructions,
        model=model,
        tools=agent_tools,
        mcp_servers=list(mcp.connections) if mcp is not None else [],
        govern=govern,
    )


def build_agents(
    config: Config,
    tools: Mapping[str, FunctionTool],
    policies: CallPolicies,
    *,
    db: Database,
    settings: CoreSettings,
    model: Model | None,
    thread_cover: ThreadCover | None = None,
    mcp: McpServers | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> AgentsByTeam:
    """One agent for the top-level `[agent]`, and one for each workspace with an `[agent]` of
    its own, sharing the tools, servers, ledger and model client. Approved calls are claimed
    in `db`'s ledger. The SDK's own tracing never exports: it would send conversation content
    to OpenAI. Its spans reach the operator's collector only, and only when `tracing` exports.
    A `model` given (tests) answers for every agent."""
    tracing = tracing or Tracing()
    route_sdk_traces(tracing.enabled)
    client = None
    if model is None:
        openai_request_transform.install()
        key = settings.openai_api_key
        client = AsyncOpenAI(
            api_key=key.get_secret_value() if key is not None else "unset",
            base_url=settings.openai_base_url,
        )
    ledger = ledgers.ExecutionLedger(db)

    def runs_of(effective: Config, *, owns_client: bool) -> AgentRuns:
        agent_model = model
        if agent_model is None:
            assert client is not None
            agent_model = build_model(effective, client)
        if metrics is not None:
            agent_model = TimedModel(agent_model, metrics=metrics, tracing=tracing)
        return AgentRuns(
            build_agent(
                effective, tools, policies, agent_model, ledger, thread_cover, mcp, metrics, tracing
            ),
            max_turns=effective.agent.max_turns,
            db=db,
            history_limit=effective.agent.history_limit,
            client=client if owns_client else None,
            cipher=db.cipher,
            mcp=mcp,
        )

    return AgentsByTeam(
        runs_of(config, owns_client=True),
        {
            team_id: runs_of(config.for_team(team_id), owns_client=False)
            for team_id, own in config.workspaces.items()
            if own.agent is not None
        },
    )

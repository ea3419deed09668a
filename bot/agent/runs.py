"""Start and resume agent runs. The only module that touches RunState.

A run ends in one of two ways we care about: a final answer, or a pause with the tool calls
that wait for a person. A pause comes back as a serialized state plus the calls, ready to be
stored in one transaction.
"""

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Protocol

from agents import (
    Agent,
    MaxTurnsExceeded,
    RawResponsesStreamEvent,
    RunContextWrapper,
    RunHooks,
    RunItemStreamEvent,
    Runner,
    RunResultStreaming,
    RunState,
    Tool,
    ToolApprovalItem,
)
from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.result import RunResult
from agents.run_state import CURRENT_SCHEMA_VERSION
from agents.tool_context import ToolContext
from openai import AsyncOpenAI

from bot.agent.mcp_servers import McpServers
from bot.agent.run_history import RunHistory
from bot.agent.thread_input import run_input
from storage.crypto import Cipher
from storage.database import Database
from storage.ids import ThreadRef
from storage.runs import SavedState

SDK_VERSION = version("openai-agents")
# Paused states this process produced, kept to resume without parsing them back (LRU).
PAUSED_KEPT = 256


@dataclass(frozen=True)
class PendingCall:
    call_id: str
    tool_name: str
    arguments: str


@dataclass(frozen=True)
class CallDecision:
    approved: bool
    message: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    final_text: str | None
    pending: list[PendingCall] = field(default_factory=list)
    saved: SavedState | None = None
    # Set when the run stopped at `max_turns`: what it did so far is in its history.
    turn_limit: int | None = None
    state: RunState[Any, Agent[Any]] | None = field(default=None, repr=False, compare=False)


class RunObserver(Protocol):
    """Sees a run as it happens, for the people watching its thread. Must not raise and must
    not block: the run does not wait for the thread to catch up."""

    def text(self, delta: str) -> None: ...

    def tool_started(self, call_id: str, tool_name: str) -> None: ...

    def tool_finished(self, call_id: str, tool_name: str) -> None: ...


class Unobserved:
    def text(self, delta: str) -> None:
        pass

    def tool_started(self, call_id: str, tool_name: str) -> None:
        pass

    def tool_finished(self, call_id: str, tool_name: str) -> None:
        pass


class StateLoadError(Exception):
    """A stored state this SDK or this agent cannot resume; the message is for the thread."""


def thread_context(thread: ThreadRef, *, run_id: str, user_id: str) -> dict[str, str]:
    """Plain JSON only: RunState serializes the context with the state."""
    return {
        "run_id": run_id,
        "team_id": thread.team_id,
        "channel_id": thread.channel_id,
        "thread_ts": thread.thread_ts,
        "user_id": user_id,
    }


class AgentRuns:
    """Runs the agent with each thread's own history (bot.agent.run_history)."""

    def __init__(
        self,
        agent: Agent[Any],
        *,
        max_turns: int,
        db: Database,
        history_limit: int,
        client: AsyncOpenAI | None = None,
        cipher: Cipher | None = None,
        mcp: McpServers | None = None,
    ) -> None:
        self.agent = agent
        self.mcp = mcp
        self.cipher = cipher
        self.client = client
        self.max_turns = max_turns
        self.db = db
        self.history_limit = history_limit
        # run id → (the stored state, the object it was serialized from)
        self._paused: OrderedDict[str, tuple[str, RunState[Any, Agent[Any]]]] = OrderedDict()

    def history(self, thread_key: str, *, stored: list[str] | None = None) -> RunHistory:
        """A run's session; `stored` is the thread's newest `history_limit` rows, if read."""
        return RunHistory(
            self.db,
            thread_key,
            cipher=self.cipher,
            settings=SessionSettings(limit=self.history_limit),
            stored=stored,
            stored_limit=self.history_limit,
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    @property
    def tool_names(self) -> list[str]:
        mcp_tools = self.mcp.tool_names() if self.mcp is not None else []
        return sorted([*(tool.name for tool in self.agent.tools), *mcp_tools])

    async def start(
        self,
        text: str,
        *,
        history: RunHistory,
        context: Mapping[str, str],
        context_items: Sequence[Mapping[str, Any]] = (),
        observer: RunObserver | None = None,
        streamed: bool = True,
    ) -> RunOutcome:
        """The run's new history items stay in `history` until its outcome is stored.

        `context_items` (what the thread said that the history lacks) go before the message.
        Unless `streamed`, the observer sees the tool calls but no text as it comes.
        """
        return await self._run(
            run_input(text, context_items),
            history=history,
            context=dict(context),
            observer=observer,
            run_id=str(context.get("run_id") or ""),
            streamed=streamed,
        )

    async def load(self, saved_state: str) -> RunState[Any, Agent[Any]]:
        try:
            schema = json.loads(saved_state).get("$schemaVersion")
        except (ValueError, AttributeError):
            raise StateLoadError("the stored run state is not valid JSON") from None
        try:
            return await RunState.from_string(self.agent, saved_state)
        except Exception as exc:
            raise StateLoadError(
                f"the paused run cannot be loaded by this version of threadgate "
                f"(state schema {schema}, SDK {SDK_VERSION}): {_short(exc)}"
            ) from None

    async def resume(
        self,
        saved_state: str,
        *,
        decisions: Mapping[str, CallDecision],
        new_messages: Sequence[str],
        history: RunHistory,
        observer: RunObserver | None = None,
        run_id: str = "",
        streamed: bool = True,
    ) -> tuple[RunOutcome, list[int]]:
        """Apply the decisions and go on; returns the outcome and the indexes of the messages
        that the paused state could not take (they go back to the thread's queue).

        Every pending call must have a decision: resuming with an undecided call would pause
        again on the same call and strand it.
        """
        state = self._kept(run_id, saved_state) or await self.load(saved_state)
        offered = {tool.name for tool in await self.agent.get_all_tools(RunContextWrapper({}))}
        for item in state.get_interruptions():
            decision = decisions.get(item.call_id or "")
            if decision is None:
                raise StateLoadError(f"no decision was stored for the call {item.call_id}")
            if decision.approved and item.name not in offered:
                # An MCP server that is down, or that no longer lists the tool.
                raise StateLoadError(
                    f"the tool {item.name} is not offered any more, so the approved call "
                    "did not run"
                )
            if decision.approved:
                state.approve(item)
            else:
                state.reject(item, rejection_message=decision.message)
        refused: list[int] = []
        for index, text in enumerate(new_messages):
            try:
                state.add_input(text)
            except Exception:
                refused.append(index)
        # The state keeps the run's turn count: `max_turns` holds across every pause.
        outcome = await self._run(
            state, history=history, observer=observer, run_id=run_id, streamed=streamed
        )
        return outcome, refused

    async def _run(
        self,
        start: str | list[TResponseInputItem] | RunState[Any, Agent[Any]],
        *,
        history: RunHistory,
        observer: RunObserver | None,
        run_id: str,
        streamed: bool,
        context: dict[str, str] | None = None,
    ) -> RunOutcome:
        """The SDK's streamed run, whose events the observer follows; or, where nobody watches
        the text as it comes, its plain run, with no server-sent events to parse and the tool
        calls told through hooks. A resumed state brings its own context."""
        watcher = observer or Unobserved()
        result: RunResult | RunResultStreaming
        try:
            if streamed:
                result = Runner.run_streamed(
                    self.agent, start, session=history, context=context, max_turns=self.max_turns
                )
                async for event in result.stream_events():
                    _tell(watcher, event)
            else:
                result = await Runner.run(
                    self.agent,
                    start,
                    session=history,
                    context=context,
                    max_turns=self.max_turns,
                    hooks=_ToolHooks(watcher),
                )
        except MaxTurnsExceeded:
            return RunOutcome(final_text=None, turn_limit=self.max_turns)
        return self._outcome(result, run_id)

    def _outcome(self, result: RunResult | RunResultStreaming, run_id: str) -> RunOutcome:
        outcome = _outcome(result)
        if outcome.saved is not None and outcome.state is not None and run_id:
            self._paused[run_id] = (outcome.saved.state, outcome.state)
            self._paused.move_to_end(run_id)
            while len(self._paused) > PAUSED_KEPT:
                self._paused.popitem(last=False)
        return outcome

    def _kept(self, run_id: str, saved_state: str) -> RunState[Any, Agent[Any]] | None:
        """The state object this process paused the run with, if what is stored is exactly what
        it was serialized to: then parsing it back would only rebuild the same object. Taken
        once: a resume that fails half-way and is tried again parses the stored state."""
        kept = self._paused.pop(run_id, None) if run_id else None
        if kept is None or kept[0] != saved_state:
            return None
        return kept[1]


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _tell(observer: RunObserver, event: object) -> None:
    if isinstance(event, RawResponsesStreamEvent):
        if event.data.type == "response.output_text.delta":
            observer.text(str(getattr(event.data, "delta", "")))
        return
    if not isinstance(event, RunItemStreamEvent):
        return
    if event.name == "tool_called":
        call_id, name = _call_of(event.item.raw_item)
        observer.tool_started(call_id, name)
    elif event.name == "tool_output":
        call_id, name = _call_of(event.item.raw_item)
        observer.tool_finished(call_id, name)


def _call_of(raw: object) -> tuple[str, str]:
    """Call id and tool name of a raw item, which is a model object or a plain dict."""
    if isinstance(raw, Mapping):
        return str(raw.get("call_id") or raw.get("id") or ""), str(raw.get("name") or "")
    call_id = getattr(raw, "call_id", None) or getattr(raw, "id", None) or ""
    return str(call_id), str(getattr(raw, "name", None) or "")


class _ToolHooks(RunHooks[Any]):
    """The observer's tool calls, for a run that is not streamed."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        self.observer.tool_started(_call_id(context), tool.name)

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        self.observer.tool_finished(_call_id(context), tool.name)


def _call_id(context: RunContextWrapper[Any]) -> str:
    return context.tool_call_id if isinstance(context, ToolContext) else ""


def _outcome(result: RunResult | RunResultStreaming) -> RunOutcome:
    if result.interruptions:
        state = result.to_state()
        return RunOutcome(
            final_text=None,
            pending=[_pending(item) for item in result.interruptions],
            saved=SavedState(
                state=state.to_string(),
                sdk_version=SDK_VERSION,
                schema_version=CURRENT_SCHEMA_VERSION,
            ),
            state=state,
        )
    final = result.final_output
    return RunOutcome(
        final_text=final if isinstance(final, str) else json.dumps(final, default=str),
    )


def _pending(item: ToolApprovalItem) -> PendingCall:
    return PendingCall(
        call_id=item.call_id or "",
        tool_name=item.name or "unknown_tool",
        arguments=item.arguments or "{}",
    )

"""MCP servers from `[[tools.mcp]]`, kept connected by the bot and offered to the agent.

Each server has one supervising task: it connects (starting a stdio server's process, or
opening the one HTTP session kept for an HTTP server), lists its tools again now and then,
and when the server stops answering closes what is left of it and connects again, with
backoff. A server that is down offers no tools, so runs go on without them; nothing waits
for it.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agents import RunContextWrapper
from agents.mcp import (
    MCPServer,
    MCPServerStdio,
    MCPServerStreamableHttp,
    create_static_tool_filter,
)
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult
from mcp.types import Tool as MCPTool

from bot.config import ConfigError, McpServerConfig, expand_env
from storage.ids import new_ref

log = logging.getLogger(__name__)

State = Literal["starting", "up", "down"]
ApprovalGate = Callable[[RunContextWrapper[Any], Any, MCPTool], bool]
FUNCTION_TOOLS = "a function tool ([tools] modules or builtins)"
_RETRY_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class McpServerSpec:
    """One `[[tools.mcp]]` entry with `${VAR}`s taken from the environment."""

    name: str
    command: tuple[str, ...] | None
    env: Mapping[str, str]
    url: str | None
    headers: Mapping[str, str]
    tools: tuple[str, ...] | None
    timeout: float

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"


def resolve_servers(
    configs: Sequence[McpServerConfig], *, config_path: Path | None, environ: Mapping[str, str]
) -> list[McpServerSpec]:
    """A variable the config names and the environment lacks stops start-up."""
    specs = []
    for index, server in enumerate(configs):
        tables: dict[str, dict[str, str]] = {"env": {}, "headers": {}}
        for table, values in (("env", server.env), ("headers", server.headers)):
            for key, value in (values or {}).items():
                try:
                    tables[table][key] = expand_env(value, environ)
                except KeyError as missing:
                    raise ConfigError(
                        config_path,
                        f"tools.mcp.{index}.{table}.{key}",
                        f"environment variable {missing.args[0]} is not set",
                    ) from None
        specs.append(
            McpServerSpec(
                name=server.name,
                command=tuple(server.command) if server.command is not None else None,
                env=tables["env"],
                url=server.url,
                headers=tables["headers"],
                tools=tuple(server.tools) if server.tools is not None else None,
                timeout=server.timeout_seconds,
            )
        )
    return specs


@dataclass(frozen=True)
class McpServerStatus:
    """What `/threadgate policy` shows of one server; nothing in it is secret."""

    name: str
    transport: Literal["stdio", "http"]
    state: State
    tools: tuple[str, ...]  # offered to the agent now
    withheld: tuple[str, ...]  # listed by the server, not offered: another source has the name
    problem: str | None  # why it is down


class ToolNames:
    """Who offers each tool name; the first to offer a name keeps it, so a server that comes
    up later with a name already taken has that tool withheld instead of shadowing another."""

    def __init__(self, function_tools: Iterable[str]) -> None:
        self._owners = dict.fromkeys(function_tools, FUNCTION_TOOLS)

    def claim(self, name: str, source: str) -> str | None:
        """None when `source` may offer `name`; else the source that has it."""
        owner = self._owners.setdefault(name, source)
        return None if owner == source else owner

    def owner(self, name: str) -> str | None:
        return self._owners.get(name)


class McpUnavailable(Exception):
    """The server is not connected, or no longer offers the tool; nothing was sent."""


class McpConnection(MCPServer):
    """The agent's view of one configured server, built on the SDK's own MCP server base class.

    Each connection is a fresh SDK client (`MCPServerStdio` or `MCPServerStreamableHttp`), so a
    restart starts from a clean transport while the agent keeps one server object: its name
    and position are what the SDK binds a paused run's MCP calls to, so they must not change.
    The SDK asks `require_approval` (our policy) whether each tool may need approval; the
    ledger cannot live here, since `call_tool` is told neither the run nor the call id: the
    agent wraps each converted tool instead (bot.agent.build.GovernedAgent).
    """

    def __init__(
        self,
        spec: McpServerSpec,
        names: ToolNames,
        *,
        require_approval: ApprovalGate,
        retry_seconds: float,
        ping_seconds: float,
    ) -> None:
        super().__init__(require_approval=require_approval, failure_error_function=self._failure)
        self.spec = spec
        self._names = names
        self._retry_seconds = retry_seconds
        self._ping_seconds = ping_seconds
        self._client: MCPServerStdio | MCPServerStreamableHttp | None = None
        self._state: State = "starting"
        self._offered: tuple[str, ...] = ()
        self._withheld: tuple[str, ...] = ()
        self._problem: str | None = None
        self._check = asyncio.Event()
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def source(self) -> str:
        return f"MCP server {self.spec.name!r}"

    def status(self) -> McpServerStatus:
        return McpServerStatus(
            name=self.spec.name,
            transport=self.spec.transport,
            state=self._state,
            tools=self._offered if self._state == "up" else (),
            withheld=self._withheld,
            problem=self._problem,
        )

    async def connect(self) -> None:
        """Start supervising, and wait for the first attempt to connect, however it ends."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"mcp {self.spec.name}")
        await self._attempted.wait()

    async def cleanup(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def listed(self) -> list[MCPTool]:
        """What the server lists, after the allow-list, before names are claimed."""
        client = self._client
        if client is None or self._state != "up":
            return []
        try:
            return await client.list_tools()
        except Exception as exc:
            self._lost(exc)
            return []

    async def list_tools(
        self, run_context: RunContextWrapper[Any] | None = None, agent: Any = None
    ) -> list[MCPTool]:
        return self._publish(await self.listed())

    def _publish(self, listed: list[MCPTool]) -> list[MCPTool]:
        """What the agent is offered of what the server lists: the names nobody else has."""
        offered, withheld = [], []
        for tool in listed:
            owner = self._names.claim(tool.name, self.source)
            if owner is None:
                offered.append(tool)
                continue
            withheld.append(tool.name)
            if tool.name not in self._withheld:
                log.warning(
                    "%s lists a tool named %r, but %s has that name: it is not offered",
                    self.source,
                    tool.name,
                    owner,
                )
        self._offered = tuple(tool.name for tool in offered)
        self._withheld = tuple(withheld)
        return offered

    def schema(self, tool_name: str) -> dict[str, Any] | None:
        client = self._client
        if client is None or tool_name not in self._offered:
            return None
        for tool in client.cached_tools or ():
            if tool.name == tool_name:
                return dict(tool.input_schema)
        return None

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> CallToolResult:
        client = self._client
        if client is None or self._state != "up":
            raise McpUnavailable(f"{self.source} is not connected")
        if tool_name not in self._offered:
            raise McpUnavailable(f"{self.source} does not offer {tool_name!r} now")
        try:
            return await client.call_tool(tool_name, arguments, meta)
        except Exception:
            self._check.set()  # a transport that broke mid-call is found by the next ping
            raise

    async def list_prompts(self) -> ListPromptsResult:
        return ListPromptsResult(prompts=[])

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        raise McpUnavailable("threadgate offers MCP tools only")

    def _failure(self, ctx: RunContextWrapper[Any], error: Exception) -> str:
        """The model's (and an approved call's card's) account of a call that failed: with a
        reference id for the log line, and no word of retrying, so nothing re-runs unasked."""
        ref = new_ref()
        log.warning("a tool call to %s failed: %s (ref %s)", self.source, type(error).__name__, ref)
        return (
            f"The tool call failed: {self.source} did not complete it (reference {ref}). "
            "It may or may not have taken effect, and it was not retried: tell the user."
        )

    def _open(self) -> MCPServerStdio | MCPServerStreamableHttp:
        spec = self.spec
        allowed = create_static_tool_filter(
            allowed_tool_names=list(spec.tools) if spec.tools is not None else None
        )
        if spec.command is not None:
            return MCPServerStdio(
                {"command": spec.command[0], "args": list(spec.command[1:]), "env": dict(spec.env)},
                name=spec.name,
                cache_tools_list=True,
                client_session_timeout_seconds=spec.timeout,
                tool_filter=allowed,
            )
        assert spec.url is not None
        return MCPServerStreamableHttp(
            {"url": spec.url, "headers": dict(spec.headers), "timeout": spec.timeout},
            name=spec.name,
            cache_tools_list=True,
            client_session_timeout_seconds=spec.timeout,
            tool_filter=allowed,
        )

    def _lost(self, exc: BaseException) -> None:
        self._problem = _problem(exc)
        self._check.set()

    async def _supervise(self) -> None:
        delay = self._retry_seconds
        while True:
            client = self._open()
            try:
                await client.connect()  # type: ignore[no-untyped-call]
                self._publish(await client.list_tools())
                self._client = client
                self._state = "up"
                self._problem = None
                log.info("%s is up, offering %d tools", self.source, len(self._offered))
                delay = self._retry_seconds
                self._attempted.set()
                await self._watch(client)
            except asyncio.CancelledError:
                self._state = "down"
                self._client = None
                with contextlib.suppress(Exception):
                    await client.cleanup()  # type: ignore[no-untyped-call]
                raise
            except Exception as exc:
                self._problem = self._problem or _problem(exc)
            self._state = "down"
            self._client = None
            log.warning("%s is down (%s); trying again in %.0fs", self.source, self._problem, delay)
            self._attempted.set()
            with contextlib.suppress(Exception):
                await client.cleanup()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)

    async def _watch(self, client: MCPServerStdio | MCPServerStreamableHttp) -> None:
        """Returns only by raising: when the server stops answering."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check.wait(), self._ping_seconds)
            self._check.clear()
            if client.session is None:
                raise McpUnavailable("the session closed")
            # Listing again is the check (not every server answers a ping), and it keeps
            # the tools offered in step with a server whose list changed.
            client.invalidate_tools_cache()  # type: ignore[no-untyped-call]
            await asyncio.wait_for(client.list_tools(), timeout=self.spec.timeout)
            self._problem = None
            await self.list_tools()


def _problem(exc: BaseException) -> str:
    """The exception's type and message: the SDK strips credentials from URLs in its errors,
    and no header value is ever part of one."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class McpServers:
    """Every configured server; `start` and `stop` bracket their lives with the bot's."""

    def __init__(
        self, connections: Sequence[McpConnection], names: ToolNames, *, config_path: Path | None
    ) -> None:
        self.connections = list(connections)
        self.names = names
        self.config_path = config_path

    async def start(self) -> None:
        """Connect each server once; two sources with one tool name among the servers that
        are up stop start-up, naming both."""
        await asyncio.gather(*(connection.connect() for connection in self.connections))
        for index, connection in enumerate(self.connections):
            for name in connection.status().withheld:
                await self.stop()
                raise ConfigError(
                    self.config_path,
                    f"tools.mcp.{index}",
                    f"tool {name!r} is offered both by {self.names.owner(name)} and by "
                    f"{connection.source}",
                )

    async def stop(self) -> None:
        await asyncio.gather(*(connection.cleanup() for connection in self.connections))

    def status(self) -> list[McpServerStatus]:
        """For `/threadgate policy`: each server, whether it is up, and the tools it offers."""
        return [connection.status() for connection in self.connections]

    def tool_names(self) -> list[str]:
        return [name for status in self.status() for name in status.tools]

    def schema(self, tool_name: str) -> dict[str, Any] | None:
        for connection in self.connections:
            schema = connection.schema(tool_name)
            if schema is not None:
                return schema
        return None

    def all_up(self) -> bool:
        return all(connection.status().state == "up" for connection in self.connections)

"""A real MCP server for tests, built with the `mcp` package's own `MCPServer`.

Run it as a team would run theirs:

    python -m tests.fakes.mcp_servers --log FILE            # over stdio
    python -m tests.fakes.mcp_servers --log FILE --http PORT --token T
                                                             # Streamable HTTP on 127.0.0.1

Everything that reaches it (its start, each new HTTP session, each tool call with its
arguments) is appended to FILE as one JSON line, so a test in another process counts what
the server received. `--tools` limits which tools it lists; `--token` makes it refuse HTTP
requests without `Authorization: Bearer <token>`.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

TOOL_NAMES = ("close_ticket", "find_ticket", "hang", "refund")


def _record(log: Path, **entry: Any) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def build_server(log: Path, tools: set[str]) -> MCPServer:
    server: MCPServer = MCPServer("tickets")

    async def close_ticket(ticket_id: str, note: str = "") -> str:
        """Close a support ticket for good."""
        _record(log, event="call", tool="close_ticket", args={"ticket_id": ticket_id, "note": note})
        return f"ticket {ticket_id} closed"

    async def find_ticket(ticket_id: str) -> str:
        """Look a ticket up (read-only)."""
        _record(log, event="call", tool="find_ticket", args={"ticket_id": ticket_id})
        return f"ticket {ticket_id}: open"

    async def hang(ticket_id: str) -> str:
        """A call that never finishes: tests stop the server while it waits."""
        _record(log, event="call", tool="hang", args={"ticket_id": ticket_id})
        await anyio.sleep_forever()
        return "unreachable"

    async def refund(order_id: str) -> str:
        """Refund an order (named like a function tool of the test kit, for clashes)."""
        _record(log, event="call", tool="refund", args={"order_id": order_id})
        return f"refunded {order_id}"

    for function in (close_ticket, find_ticket, hang, refund):
        if function.__name__ in tools:
            server.tool()(function)
    return server


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def guarded(app: ASGIApp, log: Path, token: str | None) -> ASGIApp:
    """Refuses a request without the bearer token, and records each new session."""

    async def serve(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if token is not None and headers.get("authorization") != f"Bearer {token}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"no token"})
                return
            _record(log, event="request", method=headers.get("mcp-method"), peer=scope["client"][1])
        await app(scope, receive, send)

    return serve


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--token", default=None)
    parser.add_argument("--tools", default=",".join(TOOL_NAMES[:3]))
    args = parser.parse_args(argv)
    server = build_server(args.log, set(args.tools.split(",")) if args.tools else set())
    _record(args.log, event="started", pid=os.getpid())
    if args.http is None:
        server.run("stdio")
        return
    app = guarded(server.streamable_http_app(host="127.0.0.1"), args.log, args.token)
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main(sys.argv[1:])


# -- driving it from a test -------------------------------------------------------------------


class ServerLog:
    """What the server (every life of it) recorded, read back by a test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def entries(self) -> list[dict[str, Any]]:
        text = self.path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def calls(self, tool: str) -> list[dict[str, Any]]:
        return [e["args"] for e in self.entries() if e["event"] == "call" and e["tool"] == tool]

    def starts(self) -> list[int]:
        return [e["pid"] for e in self.entries() if e["event"] == "started"]

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == "request" and e["method"] == method]

    async def wait_until(
        self,
        condition: Callable[["ServerLog"], bool],
        timeout: float = 30.0,  # noqa: ASYNC109 - a default deadline keeps every test short
    ) -> None:
        """Another process writes the file: it is read again until the condition holds."""
        async with asyncio.timeout(timeout):
            while True:
                if condition(self):
                    return
                await asyncio.sleep(0.02)


def stdio_command(log: ServerLog, tools: Sequence[str] = TOOL_NAMES[:3]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.fakes.mcp_servers",
        "--log",
        str(log.path),
        "--tools",
        ",".join(tools),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def http_server(
    log: ServerLog,
    *,
    port: int | None = None,
    token: str | None = None,
    tools: Sequence[str] = TOOL_NAMES[:3],
) -> AsyncIterator[str]:
    """The server over Streamable HTTP on 127.0.0.1, answering once it is up; yields its URL."""
    port = port or free_port()
    extra = ["--token", token] if token is not None else []
    process = await asyncio.create_subprocess_exec(
        *stdio_command(log, tools), "--http", str(port), *extra, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()

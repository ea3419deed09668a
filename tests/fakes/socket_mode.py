"""Slack's Socket Mode side of the fake: `apps.connections.open` and the WebSocket it opens.

Speaks the protocol as Slack documents it and as slack_sdk's client expects it: each URL
(`ws://…/link/?ticket=…`) admits one connection, which is greeted with `hello`; requests
arrive as envelopes (`events_api`, `interactive`, `slash_commands`) the app acks by sending
`{"envelope_id": …, "payload": …}` back; `disconnect` asks the app to reconnect. An
`events_api` envelope that was not acked when its connection was told to go, or closed, is
delivered again on the next connection with `retry_attempt` one higher and `retry_reason`
"timeout", as Slack retries events; interactivity and commands are not retried (the person
sees an error instead). Envelopes sent while no connection is open wait for the next one.

Tests deliver the very payloads the HTTP tests sign (`tests/fakes/slack_requests.py`), so a
request means the same over both transports.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.slack_requests import FORM, SignedRequest

if TYPE_CHECKING:
    from tests.fakes.slack_api import FakeSlackAPI

# What Slack says on the way in, before anything else; the host is made up, the shape is not.
DEBUG_INFO = {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060}
DISCONNECT_REASONS = frozenset({"refresh_requested", "warning", "link_disabled"})
# Interactive payloads whose ack may carry an answer (errors, a new view, options).
ANSWERED_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


@dataclass
class Envelope:
    envelope_id: str
    type: str  # events_api | interactive | slash_commands
    payload: dict[str, Any]
    accepts_response_payload: bool
    retry_attempt: int = 0
    retry_reason: str = ""
    connection: int | None = None  # the connection it was last sent on
    acked: bool = False

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "envelope_id": self.envelope_id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == "events_api":
            message["retry_attempt"] = self.retry_attempt
            message["retry_reason"] = self.retry_reason
        return message


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    connection: int


@dataclass
class _Connection:
    number: int
    ws: web.WebSocketResponse
    leaving: bool = False  # told to disconnect: Slack sends it nothing more


def envelope_payload(request: SignedRequest) -> tuple[str, dict[str, Any]]:
    """The envelope type and payload Slack sends over the socket for what it would POST."""
    body = request.body.decode()
    if request.headers["Content-Type"] != FORM:
        return "events_api", json.loads(body)
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if "payload" in fields:
        return "interactive", json.loads(fields["payload"])
    return "slash_commands", fields


class FakeSocketMode:
    def __init__(self, slack: FakeSlackAPI) -> None:
        self._slack = slack
        self._tickets: set[str] = set()
        self._connections: dict[int, _Connection] = {}
        self._opened = 0
        self.envelopes: dict[str, Envelope] = {}
        self.acks: list[Ack] = []
        self.lost_acks: list[Ack] = []
        # Every message Slack sent, hello and disconnect included, with its connection number.
        self.sent: list[tuple[int, dict[str, Any]]] = []
        self._acks_to_lose = 0

    # -- the Web API method and the WebSocket ----------------------------------------------

    def connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self._slack.port}/link/?ticket={ticket}&app_id={self._slack.app_id}"
        return {"ok": True, "url": url}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._opened += 1
        connection = _Connection(self._opened, ws)
        self._connections[connection.number] = connection
        try:
            await self._send(
                connection,
                {
                    "type": "hello",
                    "num_connections": self.open_connections,
                    "debug_info": DEBUG_INFO,
                    "connection_info": {"app_id": self._slack.app_id},
                },
            )
            await self._notify()
            for envelope in self._due():
                await self._deliver(envelope, connection)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._receive(connection, message.data)
        finally:
            del self._connections[connection.number]
            await self._notify()
        return ws

    async def _receive(self, connection: _Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        envelope_id = str(message["envelope_id"])
        ack = Ack(envelope_id, message.get("payload"), connection.number)
        if self._acks_to_lose:
            self._acks_to_lose -= 1
            self.lost_acks.append(ack)
        else:
            self.acks.append(ack)
            if envelope_id in self.envelopes:
                self.envelopes[envelope_id].acked = True
        await self._notify()

    # -- what tests do ---------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def connections_opened(self) -> int:
        return self._opened

    async def deliver(
        self, request: SignedRequest, *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Sends what Slack would have POSTed as an envelope; returns its envelope_id."""
        kind, payload = envelope_payload(request)
        if kind == "events_api":
            accepts = False
        elif kind == "slash_commands":
            accepts = True
        else:
            accepts = payload.get("type") in ANSWERED_INTERACTIONS
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=payload,
            accepts_response_payload=accepts,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        self.envelopes[envelope.envelope_id] = envelope
        connection = self._live()
        if connection is not None:
            await self._deliver(envelope, connection)
        return envelope.envelope_id

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Tells the live connection to go; the app is expected to open a new one."""
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"Slack sends no disconnect for {reason!r}")
        connection = self._live()
        if connection is None:
            raise AssertionError("no live Socket Mode connection to disconnect")
        connection.leaving = True
        await self._send(
            connection, {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        )

    def lose_acks(self, times: int = 1) -> None:
        """The next acks never reach Slack, as when the connection breaks under them."""
        self._acks_to_lose += times

    def acks_for(self, envelope_id: str) -> list[Ack]:
        return [a for a in self.acks if a.envelope_id == envelope_id]

    def deliveries(self, envelope_id: str) -> list[dict[str, Any]]:
        """Every time the envelope was sent, on any connection still open or since closed."""
        return [m for _, m in self.sent if m.get("envelope_id") == envelope_id]

    async def wait_connected(self, count: int = 1, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Until `count` connections were opened in all and one is live."""
        await self._wait(
            lambda: self._opened >= count and self._live() is not None,
            timeout,
            f"{count} Socket Mode connection(s)",
        )

    async def wait_ack(self, envelope_id: str, *, timeout: float = 30.0) -> Ack:  # noqa: ASYNC109
        await self._wait(lambda: bool(self.acks_for(envelope_id)), timeout, "the ack")
        return self.acks_for(envelope_id)[0]

    async def wait_lost_acks(self, count: int, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        await self._wait(lambda: len(self.lost_acks) >= count, timeout, f"{count} lost ack(s)")

    async def send_and_ack(self, request: SignedRequest) -> Ack:
        return await self.wait_ack(await self.deliver(request))

    # -- internals -------------------------------------------------------------------------

    def _live(self) -> _Connection | None:
        live = [c for c in self._connections.values() if not c.leaving and not c.ws.closed]
        return live[-1] if live else None

    def _due(self) -> list[Envelope]:
        """Envelopes waiting for a connection: never sent, or events whose connection went
        before they were acked."""
        due = []
        for envelope in self.envelopes.values():
            if envelope.acked:
                continue
            if envelope.connection is None:
                due.append(envelope)
                continue
            gone = self._connections.get(envelope.connection)
            if envelope.type == "events_api" and (gone is None or gone.leaving):
                envelope.retry_attempt += 1
                envelope.retry_reason = "timeout"
                due.append(envelope)
        return due

    async def _deliver(self, envelope: Envelope, connection: _Connection) -> None:
        envelope.connection = connection.number
        await self._send(connection, envelope.message())

    async def _send(self, connection: _Connection, message: dict[str, Any]) -> None:
        self.sent.append((connection.number, message))
        await connection.ws.send_str(json.dumps(message))

    async def _notify(self) -> None:
        async with self._slack.changed:
            self._slack.changed.notify_all()

    async def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout), self._slack.changed:
                await self._slack.changed.wait_for(done)
        except TimeoutError:
            raise AssertionError(f"waited {timeout}s for {what}") from None

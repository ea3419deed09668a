"""Socket Mode: Slack's WebSocket instead of a public URL, for a bot behind a firewall.

slack_bolt's handler does the protocol (acks, reconnects on `disconnect`); what it does not do
is stop when Slack refuses the app-level token: its connect loop retries a refused token
forever while /healthz says ready. So the first URL is fetched here, where a refusal ends
start-up as a refused bot token does. Each envelope is handled as a request in flight
(`AckFirst`), so its ack goes before new agent work as over HTTP.
"""

from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.container import Threadgate
from bot.runtime.ack_first import AckFirst

# apps.connections.open errors that no retry will cure.
REFUSED_APP_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "not_allowed_token_type", "account_inactive", "token_revoked"}
)


class _AckFirstHandler(AsyncSocketModeHandler):
    def __init__(self, ack_first: AckFirst, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ack_first = ack_first

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        with self._ack_first.request():
            await super().handle(client, req)


async def connect(threadgate: Threadgate, app_token: str) -> AsyncSocketModeHandler:
    """Open the connection; a token Slack refuses raises its `SlackApiError` instead."""
    handler = _AckFirstHandler(threadgate.ack_first, threadgate.bolt, app_token)
    try:
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
        await handler.connect_async()  # type: ignore[no-untyped-call]
    except BaseException:
        await handler.close_async()  # type: ignore[no-untyped-call]
        raise
    return handler

"""Private replies: what only the person who clicked or typed should see.

They answer a request, not a change of state, so they go straight to Slack; what the bot owes
a thread goes through the outbox (bot.runtime.outbox).
"""

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks

log = logging.getLogger(__name__)


class ThreadReplies:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def private(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """Only `user` sees it; failures are logged, never raised into a click handler. `text` is
        the bot's own mrkdwn, like a note's."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.truncate(text, 3000), thread_ts=thread_ts
            )
        except SlackApiError as exc:
            log.warning("could not send a private note: %s", exc.response.get("error"))

    async def direct(self, *, user: str, text: str) -> None:
        """A direct message from the app, for when there is no channel to answer in."""
        try:
            await self.client.chat_postMessage(channel=user, text=blocks.truncate(text, 3000))
        except SlackApiError as exc:
            log.warning("could not send a direct message: %s", exc.response.get("error"))

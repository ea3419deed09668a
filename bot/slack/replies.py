"""Posting into a thread: answers, notes and failures, each safe at any length."""

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks
from storage.ids import ThreadRef

log = logging.getLogger(__name__)


class ThreadReplies:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def answer(self, thread: ThreadRef, text: str) -> str | None:
        """The model's words, escaped: an answer can neither ping nor link."""
        fallback, body = blocks.answer(text)
        return await self._post(thread, fallback, body)

    async def note(self, thread: ThreadRef, text: str) -> str | None:
        """`text` is the bot's own mrkdwn: escape anything in it that is not."""
        fallback, body = blocks.plain(text)
        return await self._post(thread, fallback, body)

    async def failure(self, thread: ThreadRef, what: str, ref: str) -> str | None:
        """`what` may quote an error, which may quote a tool or a model: it is escaped."""
        return await self.note(
            thread,
            f":warning: {blocks.escape(what, 1000)} Reference: `{ref}`. "
            "You can keep writing in this thread.",
        )

    async def private(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """Only `user` sees it; failures are logged, never raised into a click handler. `text` is
        the bot's own mrkdwn, like a note's."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.truncate(text, 3000), thread_ts=thread_ts
            )
        except SlackApiError as exc:
            log.warning("could not send a private note: %s", exc.response.get("error"))

    async def _post(self, thread: ThreadRef, text: str, body: list[blocks.Block]) -> str | None:
        response = await self.client.chat_postMessage(
            channel=thread.channel_id, thread_ts=thread.thread_ts, text=text, blocks=body
        )
        ts = response.get("ts")
        return str(ts) if ts is not None else None

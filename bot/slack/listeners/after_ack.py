"""Work a click starts after its ack: a person whose click could not be recorded is told.

Slack does not retry a click it got a 200 for, so when the database is unreachable the
clicker hears, privately, that nothing was decided and that clicking again later will work.
"""

import logging
from collections.abc import Coroutine
from typing import Any

from bot.runtime.background import Background
from bot.slack.replies import ThreadReplies
from storage.database import UNAVAILABLE

log = logging.getLogger(__name__)

NOT_RECORDED = (
    ":warning: I couldn't record that just now: my database is unreachable, so nothing was "
    "decided. Please try again in a minute."
)


class AfterAck:
    def __init__(self, background: Background, replies: ThreadReplies) -> None:
        self.background = background
        self.replies = replies

    def start(
        self,
        work: Coroutine[Any, Any, None],
        *,
        channel: str | None,
        user: str,
        thread_ts: str | None,
        name: str,
        told: str = NOT_RECORDED,
    ) -> None:
        """`channel` None (a modal has none): the person is told in a direct message."""
        self.background.spawn(self._told_on_outage(work, channel, user, thread_ts, told), name=name)

    async def _told_on_outage(
        self,
        work: Coroutine[Any, Any, None],
        channel: str | None,
        user: str,
        thread_ts: str | None,
        told: str,
    ) -> None:
        try:
            await work
        except UNAVAILABLE as exc:
            log.warning(
                "a click could not be recorded: the database is unreachable (%s)",
                type(exc).__name__,
            )
            if channel is None:
                await self.replies.direct(user=user, text=told)
            else:
                await self.replies.private(
                    channel=channel, user=user, thread_ts=thread_ts, text=told
                )

"""A Slack thread is one conversation: each message a person writes to the bot joins its queue."""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from storage.database import Database
from storage.ids import ThreadRef
from storage.inbox import Inbox
from storage.messages import Accepted, IncomingRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    event_id: str
    team_id: str
    channel_id: str
    user_id: str
    ts: str
    thread_ts: str | None
    text: str
    addressed_to_bot: bool
    enterprise_id: str | None = None  # the workspace's Enterprise Grid org
    has_files: bool | None = None  # the event carried files; None: not known

    @property
    def thread(self) -> ThreadRef:
        return ThreadRef(self.team_id, self.channel_id, self.thread_ts or self.ts)


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()


class Conversations:
    def __init__(
        self,
        db: Database,
        *,
        kick: Callable[[str], None],
        on_queued: Callable[[ThreadRef, str], None] | None = None,
    ) -> None:
        self.db = db
        self.inbox = Inbox(db)
        self.kick = kick
        # The thread's first sign of life goes up here, right as the ack goes out, rather
        # than when a worker gets to the job.
        self.on_queued = on_queued

    async def receive(self, message: IncomingMessage) -> Accepted:
        """Store the message before Slack gets its ack, so an ack never outlives a crash."""
        thread = message.thread
        accepted = await self.inbox.accept(
            IncomingRow(
                event_id=message.event_id,
                thread=thread,
                user_id=message.user_id,
                message_ts=message.ts,
                text=message.text,
                only_known_thread=not message.addressed_to_bot,
                enterprise_id=message.enterprise_id,
                has_files=message.has_files,
            )
        )
        if accepted == Accepted.QUEUED:
            self.kick(thread.key)
            if self.on_queued is not None:
                self.on_queued(thread, message.ts)
        return accepted

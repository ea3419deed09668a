"""What a thread said that the bot has not recorded yet, for the run a message starts.

Asked in the middle of a human thread ("what is the order id above?"), the agent needs the
messages before the question; its own history of the thread holds only what it took part in.
So a starting run reads the thread (`conversations.replies`) and gets, as input items before
the new message:

- every message a person wrote in the thread after the bot's record of it ends and before the
  new message, oldest first, the newest `history_limit` of them, each labelled with its author.
  The record ends at the later of two points: the newest message the bot already took from the
  thread as a run's input (the caller passes it) and the bot's own newest post there. Anything
  older is in the bot's history already, or was seen by a run that answered after it; the
  bot's own posts and other apps' messages are never read as people's words;
- the files those messages and the new message carry (bot.slack.thread_files).

The authors of what is read are returned with it: they asked for the run's calls as much as
the person who mentioned the bot. Everything read is untrusted: it is never logged, only ids
and counts are. A thread that cannot be read is a note to the model, never a failed run.
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.thread_files import FileReader, file_name, input_text
from storage.ids import ThreadRef

log = logging.getLogger(__name__)

# Message subtypes that are a person writing; edits, joins and bots are not.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
PAGE_SIZE = 200
MAX_PAGES = 50  # 10,000 messages: a thread longer than that is read up to there
MAX_FILES = 10  # per run: the new message's first, then the newest messages'
PARALLEL_FILES = 4


@dataclass(frozen=True)
class ThreadContext:
    items: list[dict[str, Any]] = field(default_factory=list)  # Responses input items
    authors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Message:
    ts: Decimal
    user: str
    text: str
    files: Sequence[Mapping[str, Any]]


class ThreadReader:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        files: FileReader,
        history_limit: int,
        own_event_type: str,
    ) -> None:
        """`own_event_type` marks the bot's own posts (their metadata's event_type)."""
        self.client = client
        self.files = files
        self.history_limit = history_limit
        self.own_event_type = own_event_type

    async def read(
        self, thread: ThreadRef, *, message_ts: str, user_id: str, after_ts: str | None
    ) -> ThreadContext:
        """What the run for the message `message_ts` by `user_id` reads besides its history;
        `after_ts` is the newest message of the thread the bot already took."""
        new = _ts(message_ts)
        if new is None:
            return ThreadContext()
        try:
            raw = await self._replies(thread, message_ts, after_ts)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as exc:
            error = (
                exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
            )
            log.warning("thread %s could not be read: %s", thread.key, error)
            if thread.thread_ts == message_ts:
                return ThreadContext()  # a thread's first message: nothing came before it
            note = "The earlier messages of this thread could not be read from Slack."
            return ThreadContext([{"role": "user", "content": [input_text(note)]}])
        floor = _ts(after_ts) if after_ts else None
        people: list[_Message] = []
        asked: _Message | None = None
        for message in raw:
            ts = _ts(message.get("ts"))
            if ts is None or ts > new:
                continue
            if self._is_own(message):
                floor = ts if floor is None else max(floor, ts)
            person = _person(message, ts)
            if person is not None and ts == new:
                asked = person
            elif person is not None:
                people.append(person)
        earlier = [m for m in people if floor is None or m.ts > floor][-self.history_limit :]
        if asked is not None and asked.user != user_id:
            asked = None  # not the message we were told of: read none of its files
        return await self._context(earlier, asked)

    async def _replies(
        self, thread: ThreadRef, message_ts: str, after_ts: str | None
    ) -> list[Mapping[str, Any]]:
        messages: list[Mapping[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            response = await self.client.conversations_replies(
                channel=thread.channel_id,
                ts=thread.thread_ts,
                oldest=after_ts,
                latest=message_ts,
                inclusive=True,
                include_all_metadata=True,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
            messages.extend(m for m in response.get("messages") or [] if isinstance(m, dict))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return messages

    def _is_own(self, message: Mapping[str, Any]) -> bool:
        metadata = message.get("metadata")
        return isinstance(metadata, dict) and metadata.get("event_type") == self.own_event_type

    async def _context(self, earlier: Sequence[_Message], asked: _Message | None) -> ThreadContext:
        # Files in priority order: the new message's, then the newest messages' first.
        wanted = [(asked, f) for f in asked.files] if asked is not None else []
        wanted += [(m, f) for m in reversed(earlier) for f in m.files]
        limit = asyncio.Semaphore(PARALLEL_FILES)

        async def read(message: _Message, attached: Mapping[str, Any]) -> list[dict[str, Any]]:
            async with limit:
                return await self.files.parts(attached, author=message.user)

        parts = await asyncio.gather(*(read(m, f) for m, f in wanted[:MAX_FILES]))
        read_parts: dict[int, list[dict[str, Any]]] = {}
        for (_, attached), found in zip(wanted, parts, strict=False):
            read_parts.setdefault(id(attached), found)
        for message, attached in wanted[MAX_FILES:]:
            note = (
                f'File "{file_name(attached)}" from <@{message.user}> not read: '
                f"a run reads at most {MAX_FILES} files."
            )
            read_parts[id(attached)] = [input_text(note)]

        items: list[dict[str, Any]] = []
        for message in earlier:
            said = (
                f"Earlier in this thread, <@{message.user}> wrote:\n{message.text}"
                if message.text.strip()
                else f"Earlier in this thread, <@{message.user}> shared:"
            )
            content = [input_text(said)]
            for attached in message.files:
                content += read_parts[id(attached)]
            items.append({"role": "user", "content": content})
        if asked is not None and asked.files:
            content = [input_text(f"<@{asked.user}> attached to the message below:")]
            for attached in asked.files:
                content += read_parts[id(attached)]
            items.append({"role": "user", "content": content})
        authors = {m.user for m in earlier}
        if asked is not None and asked.files:
            authors.add(asked.user)
        log.debug("read %d earlier messages and %d files", len(earlier), len(wanted))
        return ThreadContext(items, frozenset(authors))


def _ts(value: object) -> Decimal | None:
    try:
        ts = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return ts if ts is not None and ts.is_finite() else None


def _person(message: Mapping[str, Any], ts: Decimal) -> _Message | None:
    """A message a person wrote, or None for bots, apps and system messages."""
    user = message.get("user")
    if message.get("bot_id") or message.get("subtype") not in PERSON_SUBTYPES:
        return None
    if not isinstance(user, str) or not user:
        return None
    text = message.get("text")
    files = [f for f in message.get("files") or [] if isinstance(f, dict)]
    if not (isinstance(text, str) and text.strip()) and not files:
        return None
    return _Message(ts, user, text if isinstance(text, str) else "", files)

"""Incoming messages: stored once, however often Slack delivers them, before the ack."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlmodel import col

from storage.database import Database
from storage.ids import ThreadRef
from storage.models import (
    Job,
    JobKind,
    JobStatus,
    SlackEvent,
    Thread,
    utcnow,
)
from storage.statements import insert_unless_taken


class Accepted(StrEnum):
    QUEUED = "queued"
    DUPLICATE_EVENT = "duplicate_event"
    DUPLICATE_MESSAGE = "duplicate_message"
    NOT_OUR_THREAD = "not_our_thread"


@dataclass(frozen=True)
class IncomingRow:
    event_id: str
    thread: ThreadRef
    user_id: str
    message_ts: str
    text: str
    only_known_thread: bool
    enterprise_id: str | None = None  # the workspace's Enterprise Grid org
    has_files: bool | None = None  # the event carried files; None: not known


async def accept_messages(db: Database, rows: Sequence[IncomingRow]) -> list[Accepted]:
    """Queue several messages in one transaction of three or four statements, whatever their
    number.

    The event id catches Slack's retries; the message's own ts catches the second event Slack
    sends for a message that mentions the bot (`app_mention` and `message`). Rows keep their
    order, so jobs of one thread are numbered in the order the messages came.
    """
    if not rows:
        return []
    now = utcnow()
    results: list[Accepted | None] = [None] * len(rows)
    async with db.write(urgent=True) as session:
        first_of_event: dict[str, int] = {}
        for index, row in enumerate(rows):
            if row.event_id in first_of_event:
                results[index] = Accepted.DUPLICATE_EVENT
            else:
                first_of_event[row.event_id] = index
        # Only messages that are not addressed to the bot need to know which threads exist.
        keys = {rows[i].thread.key for i in first_of_event.values() if rows[i].only_known_thread}
        known: set[str] = set()
        if keys:
            found = await session.scalars(select(col(Thread.key)).where(col(Thread.key).in_(keys)))
            known = set(found)
        followed: list[int] = []
        for index in first_of_event.values():
            if rows[index].only_known_thread and rows[index].thread.key not in known:
                results[index] = Accepted.NOT_OUR_THREAD
            else:
                followed.append(index)
        # Most of a channel's messages are other people's threads: an ignored message leaves no
        # row, not even its event id (a retry of it is ignored again, just as cheaply).
        new_events = await insert_unless_taken(
            session,
            SlackEvent,
            [{"event_id": rows[i].event_id, "received_at": now} for i in followed],
            key="event_id",
        )
        wanted: list[int] = []
        for index in followed:
            if rows[index].event_id in new_events:
                wanted.append(index)
            else:
                results[index] = Accepted.DUPLICATE_EVENT
        new_threads = {rows[i].thread.key: rows[i].thread for i in wanted}
        orgs = {rows[i].thread.key: rows[i].enterprise_id for i in wanted}
        await insert_unless_taken(
            session,
            Thread,
            [
                {
                    "key": t.key,
                    "team_id": t.team_id,
                    "enterprise_id": orgs[key],
                    "channel_id": t.channel_id,
                    "thread_ts": t.thread_ts,
                    "created_at": now,
                }
                for key, t in new_threads.items()
                if key not in known
            ],
            key="key",
        )
        first_of_message: dict[str, int] = {}
        for index in wanted:
            thread = rows[index].thread
            dedupe = f"msg:{thread.team_id}:{thread.channel_id}:{rows[index].message_ts}"
            if dedupe in first_of_message:
                results[index] = Accepted.DUPLICATE_MESSAGE
            else:
                first_of_message[dedupe] = index
        queued = await insert_unless_taken(
            session,
            Job,
            [
                {
                    "thread_key": rows[index].thread.key,
                    "kind": JobKind.MESSAGE,
                    "status": JobStatus.QUEUED,
                    "dedupe_key": dedupe,
                    "user_id": rows[index].user_id,
                    "message_ts": rows[index].message_ts,
                    "text": rows[index].text,
                    "has_files": rows[index].has_files,
                    "created_at": now,
                }
                for dedupe, index in first_of_message.items()
            ],
            key="dedupe_key",
        )
        for dedupe, index in first_of_message.items():
            results[index] = Accepted.QUEUED if dedupe in queued else Accepted.DUPLICATE_MESSAGE
    return [r if r is not None else Accepted.DUPLICATE_EVENT for r in results]


async def newest_message_taken(
    db: Database, *, thread_key: str, before_ts: str, except_job: int | None = None
) -> str | None:
    """The ts of the thread's newest message, older than `before_ts`, that the bot took as a
    run's input (queued, answered, carried into a resume). Messages of the thread up to it are
    in the bot's history already, or on their way there.

    Slack's ts are fixed width (ten digits, a dot, six digits), so text order is time order.
    """
    query = select(func.max(col(Job.message_ts))).where(
        col(Job.thread_key) == thread_key,
        col(Job.kind) == JobKind.MESSAGE,
        col(Job.message_ts) < before_ts,
    )
    if except_job is not None:
        query = query.where(col(Job.id) != except_job)
    async with db.read() as session:
        return await session.scalar(query)

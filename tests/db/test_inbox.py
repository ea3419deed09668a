"""Group commit of incoming messages: a burst is stored in few transactions, each answered right."""

import asyncio
from collections import Counter

from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.ids import ThreadRef
from storage.inbox import Inbox
from storage.messages import Accepted, IncomingRow
from storage.models import Job


def _row(i: int, *, event_id: str | None = None, ts: str | None = None) -> IncomingRow:
    return IncomingRow(
        event_id=event_id or f"Ev{i}",
        thread=ThreadRef("T1", "C1", ts or f"{i}.0"),
        user_id="U1",
        message_ts=ts or f"{i}.0",
        text=f"message {i}",
        only_known_thread=False,
    )


async def test_a_burst_is_stored_in_few_transactions_and_each_gets_its_own_answer(
    db: Database,
) -> None:
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine.sync_engine, "commit", count)
    inbox = Inbox(db)
    rows = [_row(i) for i in range(40)]
    rows.append(_row(0))  # a Slack retry of the first event
    rows.append(_row(99, event_id="Ev99", ts="1.0"))  # the same message as a second event
    results = await asyncio.gather(*(inbox.accept(row) for row in rows))
    await inbox.close()

    assert Counter(results) == Counter(
        {
            Accepted.QUEUED: 40,
            Accepted.DUPLICATE_EVENT: 1,
            Accepted.DUPLICATE_MESSAGE: 1,
        }
    )
    assert commits <= 3
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 40

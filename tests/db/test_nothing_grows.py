"""Nothing grows without bound by default: ignored messages leave no row, event ids expire."""

from datetime import timedelta

from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import col

from storage.database import Database
from storage.ids import ThreadRef
from storage.messages import Accepted, IncomingRow, accept_messages
from storage.models import SlackEvent, utcnow
from storage.retention import EVENT_IDS_KEPT, purge_event_ids
from tests.row_counts import row_counts


def _row(event_id: str, thread_ts: str, ts: str, *, only_known_thread: bool) -> IncomingRow:
    return IncomingRow(
        event_id=event_id,
        thread=ThreadRef("T1", "C1", thread_ts),
        user_id="U1",
        message_ts=ts,
        text="chatter",
        only_known_thread=only_known_thread,
    )


def _ignored(i: int) -> IncomingRow:
    """A message in a thread the bot does not take part in, not addressed to it."""
    return _row(f"EvIgnored{i}", f"{i}.000", f"{i}.001", only_known_thread=True)


async def test_ignored_messages_leave_no_row_in_any_table(db: Database) -> None:
    rows = [_ignored(i) for i in range(5)]

    results = await accept_messages(db, rows)
    retried = await accept_messages(db, rows[:2])

    assert results == [Accepted.NOT_OUR_THREAD] * 5
    assert retried == [Accepted.NOT_OUR_THREAD] * 2
    counts = await row_counts(db)
    assert {"slack_events", "threads", "jobs"} <= counts.keys()
    assert set(counts.values()) == {0}, counts


async def test_a_mixed_burst_records_only_what_it_queued_in_a_few_statements(
    db: Database,
) -> None:
    statements: list[str] = []

    def count(_conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    queued = _row("EvQueued", "100.000", "100.000", only_known_thread=False)
    follow_up = _row("EvFollowUp", "100.000", "100.500", only_known_thread=True)
    await accept_messages(db, [queued])
    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    burst = [_ignored(i) for i in range(20)] + [follow_up]

    results = await accept_messages(db, burst)
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)

    assert results == [Accepted.NOT_OUR_THREAD] * 20 + [Accepted.QUEUED]
    # Select the threads, insert the event ids, the threads and the jobs: however many rows.
    assert len(statements) <= 4, statements
    async with db.read() as session:
        stored = set(await session.scalars(select(col(SlackEvent.event_id))))
    assert stored == {"EvQueued", "EvFollowUp"}
    # Slack's retry of a message that was queued is still caught by its event id.
    assert await accept_messages(db, [queued, follow_up]) == [Accepted.DUPLICATE_EVENT] * 2


async def test_event_ids_older_than_a_few_days_go_in_batches_and_recent_ones_stay(
    db: Database,
) -> None:
    rows = [_row(f"Ev{i}", f"{i}.000", f"{i}.000", only_known_thread=False) for i in range(7)]
    assert set(await accept_messages(db, rows)) == {Accepted.QUEUED}
    old = [f"Ev{i}" for i in range(5)]
    async with db.write() as session:
        await session.execute(
            update(SlackEvent)
            .where(col(SlackEvent.event_id).in_(old))
            .values(received_at=utcnow() - EVENT_IDS_KEPT - timedelta(hours=1))
        )

    counts = await purge_event_ids(db, older_than=utcnow() - EVENT_IDS_KEPT, batch_size=2)

    assert counts.slack_events == 5
    assert counts.total == 5
    async with db.read() as session:
        left = set(await session.scalars(select(col(SlackEvent.event_id))))
        assert await session.scalar(select(func.count()).select_from(SlackEvent)) == 2
    assert left == {"Ev5", "Ev6"}

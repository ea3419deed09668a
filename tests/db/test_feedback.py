"""Opinions of answers on both databases: one per person and answer, only for a real answer of
the channel clicked in, counted by when they were given, and purged like everything else."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlmodel import col

from storage.database import Database
from storage.feedback import Opinion, Recorded, Totals, record_opinion, totals_since
from storage.ids import new_run_id
from storage.models import Feedback, FeedbackValue, Run, RunStatus, Thread, utcnow
from storage.retention import purge

TEAM, CHANNEL = "T1", "C1"


async def answer(db: Database, *, channel: str = CHANNEL) -> str:
    """A finished run in a thread of `channel`: what a feedback button names."""
    run_id = new_run_id()
    thread_key = f"{TEAM}:{channel}:1.{run_id[-6:]}"
    async with db.write() as session:
        session.add(Thread(key=thread_key, team_id=TEAM, channel_id=channel, thread_ts="1.0"))
        await session.flush()
        session.add(
            Run(id=run_id, thread_key=thread_key, requested_by="U1", status=RunStatus.COMPLETED)
        )
    return run_id


def opinion(run_id: str, user: str, value: FeedbackValue, **where: str) -> Opinion:
    return Opinion(
        run_id=run_id,
        team_id=where.get("team", TEAM),
        channel_id=where.get("channel", CHANNEL),
        message_ts="2.0",
        user_id=user,
        value=value,
    )


async def rows(db: Database) -> list[tuple[str, str, str]]:
    async with db.read() as session:
        found = await session.execute(
            select(col(Feedback.run_id), col(Feedback.user_id), col(Feedback.value)).order_by(
                col(Feedback.user_id)
            )
        )
        return [(r, u, str(v)) for r, u, v in found.all()]


async def test_a_second_click_by_the_same_person_replaces_the_first(db: Database) -> None:
    run_id = await answer(db)

    first = await record_opinion(db, opinion(run_id, "U1", FeedbackValue.POSITIVE))
    other = await record_opinion(db, opinion(run_id, "U2", FeedbackValue.POSITIVE))
    again = await record_opinion(db, opinion(run_id, "U1", FeedbackValue.NEGATIVE))

    assert (first, other, again) == (Recorded.NEW, Recorded.NEW, Recorded.CHANGED)
    assert await rows(db) == [(run_id, "U1", "negative"), (run_id, "U2", "positive")]


async def test_clicks_racing_leave_one_row(db: Database) -> None:
    run_id = await answer(db)

    await asyncio.gather(
        *(
            record_opinion(db, opinion(run_id, "U1", value))
            for value in [FeedbackValue.POSITIVE, FeedbackValue.NEGATIVE] * 4
        )
    )

    assert len(await rows(db)) == 1


async def test_an_unknown_run_or_one_of_another_channel_or_team_stores_nothing(
    db: Database,
) -> None:
    elsewhere = await answer(db, channel="C2")

    unknown = await record_opinion(db, opinion(new_run_id(), "U1", FeedbackValue.POSITIVE))
    other_channel = await record_opinion(db, opinion(elsewhere, "U1", FeedbackValue.POSITIVE))
    other_team = await record_opinion(
        db, opinion(elsewhere, "U1", FeedbackValue.POSITIVE, team="T2", channel="C2")
    )

    assert unknown == other_channel == other_team == Recorded.UNKNOWN_ANSWER
    assert await rows(db) == []


async def test_totals_count_the_opinions_given_since(db: Database) -> None:
    run_id = await answer(db)
    for user, value in [("U1", "positive"), ("U2", "positive"), ("U3", "negative")]:
        await record_opinion(db, opinion(run_id, user, FeedbackValue(value)))
    async with db.write() as session:
        await session.execute(
            update(Feedback)
            .where(col(Feedback.user_id) == "U2")
            .values(created_at=utcnow() - timedelta(days=10))
        )

    assert await totals_since(db, utcnow() - timedelta(days=7)) == Totals(positive=1, negative=1)
    assert await totals_since(db, utcnow() - timedelta(days=30)) == Totals(positive=2, negative=1)


async def test_retention_purges_old_feedback_and_keeps_recent(db: Database) -> None:
    run_id = await answer(db)
    await record_opinion(db, opinion(run_id, "U1", FeedbackValue.POSITIVE))
    await record_opinion(db, opinion(run_id, "U2", FeedbackValue.NEGATIVE))
    async with db.write() as session:
        await session.execute(
            update(Feedback)
            .where(col(Feedback.user_id) == "U1")
            .values(created_at=utcnow() - timedelta(days=40))
        )

    counts = await purge(db, older_than=utcnow() - timedelta(days=30), purge_history=False)

    assert counts.feedback == 1
    assert await rows(db) == [(run_id, "U2", "negative")]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Run)) == 1

"""People's opinions of answers: stored only for an answer of the channel they clicked in.

A feedback button carries a run id that anyone could forge, so a click is recorded only when
that run exists and belongs to the team and channel the click came from. One person has one
opinion of an answer: clicking again replaces it, in one upsert, so two clicks racing in two
processes still leave one row.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Feedback, FeedbackValue, Run, utcnow


class Recorded(StrEnum):
    NEW = "new"  # the first opinion of this person on this answer
    CHANGED = "changed"  # replaced their earlier one
    UNKNOWN_ANSWER = "unknown_answer"  # no such run in this team and channel: nothing stored


@dataclass(frozen=True)
class Opinion:
    run_id: str
    team_id: str
    channel_id: str
    message_ts: str | None
    user_id: str
    value: FeedbackValue


@dataclass(frozen=True)
class Totals:
    positive: int = 0
    negative: int = 0

    @property
    def total(self) -> int:
        return self.positive + self.negative


async def record_opinion(db: Database, opinion: Opinion) -> Recorded:
    """Store `opinion` if its run is an answer of that team and channel; one transaction."""
    async with db.write() as session:
        thread_key = await session.scalar(
            select(col(Run.thread_key)).where(col(Run.id) == opinion.run_id)
        )
        if thread_key is None or not _same_channel(thread_key, opinion):
            return Recorded.UNKNOWN_ANSWER
        earlier = await session.scalar(
            select(col(Feedback.id)).where(
                col(Feedback.run_id) == opinion.run_id, col(Feedback.user_id) == opinion.user_id
            )
        )
        values: dict[str, Any] = {
            "run_id": opinion.run_id,
            "team_id": opinion.team_id,
            "channel_id": opinion.channel_id,
            "message_ts": opinion.message_ts,
            "user_id": opinion.user_id,
            "value": opinion.value.value,
            "created_at": utcnow(),
        }
        table = Feedback.__table__  # type: ignore[attr-defined]
        dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        insert = dialect.insert(table).values(values)
        changed = {k: insert.excluded[k] for k in ("value", "message_ts", "created_at")}
        await session.execute(
            insert.on_conflict_do_update(index_elements=["run_id", "user_id"], set_=changed)
        )
        return Recorded.NEW if earlier is None else Recorded.CHANGED


def _same_channel(thread_key: str, opinion: Opinion) -> bool:
    thread = ThreadRef.from_key(thread_key)
    return (thread.team_id, thread.channel_id) == (opinion.team_id, opinion.channel_id)


async def totals_since(db: Database, since: datetime) -> Totals:
    """Opinions on record given at or after `since`, by value."""
    if since.tzinfo is None:
        raise ValueError("since must be an aware datetime")
    async with db.read() as session:
        rows = await session.execute(
            select(col(Feedback.value), func.count())
            .where(col(Feedback.created_at) >= since)
            .group_by(col(Feedback.value))
        )
        counts = {str(value): int(count) for value, count in rows.all()}
    return Totals(
        positive=counts.get(FeedbackValue.POSITIVE.value, 0),
        negative=counts.get(FeedbackValue.NEGATIVE.value, 0),
    )

"""The columns that hold sealed (possibly encrypted) text, checked at start-up."""

from typing import Any

from sqlalchemy import select
from sqlmodel import col

from storage.database import Database
from storage.models import (
    Approval,
    Job,
    Run,
)


async def check_stored_data_opens(db: Database) -> None:
    """Fail at start-up, not at someone's click, when the configured keys cannot read the data.

    Reads the newest value of each sealed column; raises DecryptionError if one will not open.
    """
    newest: list[Any] = [
        select(col(Run.state))
        .where(col(Run.state).is_not(None))
        .order_by(col(Run.updated_at).desc()),
        select(col(Approval.arguments)).order_by(col(Approval.created_at).desc()),
        select(col(Job.text)).where(col(Job.text).is_not(None)).order_by(col(Job.id).desc()),
    ]
    async with db.read() as session:
        for query in newest:
            await session.scalar(query.limit(1))

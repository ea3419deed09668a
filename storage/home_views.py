"""Who has opened the App Home: a decision redraws the Home views of the call's approvers
that exist, and never publishes one to somebody who has not opened it."""

from collections.abc import Collection

from sqlalchemy import bindparam, select
from sqlmodel import col

from storage.database import Database
from storage.models import HomeView, utcnow

# Every decision asks it: built once, bound each time (see storage/statements).
_OPENED_BY = select(col(HomeView.user_id)).where(
    col(HomeView.team_id) == bindparam("team_id"),
    col(HomeView.user_id).in_(bindparam("user_ids", expanding=True)),
)


async def published(db: Database, *, team_id: str, user_id: str) -> None:
    async with db.write() as session:
        row = await session.get(HomeView, (team_id, user_id), with_for_update=True)
        if row is None:
            session.add(HomeView(team_id=team_id, user_id=user_id, published_at=utcnow()))
        else:
            row.published_at = utcnow()


async def opened_by(db: Database, *, team_id: str, user_ids: Collection[str]) -> list[str]:
    """Those of `user_ids` who have a Home view in this team."""
    if not user_ids:
        return []
    async with db.read() as session:
        rows = await session.scalars(
            _OPENED_BY, {"team_id": team_id, "user_ids": list(set(user_ids))}
        )
        return sorted(rows)

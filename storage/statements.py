"""Statement shapes that several repositories share."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def rowcount(result: Any) -> int:
    """How many rows a compare-and-set changed: its only outcome that matters."""
    return result.rowcount if isinstance(result, CursorResult) else 0


async def insert_unless_taken(
    session: AsyncSession, model: type[SQLModel], values: list[dict[str, Any]], *, key: str
) -> set[str]:
    """Insert rows unless their unique key is taken; returns the keys this call inserted."""
    if not values:
        return set()
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).values(values).on_conflict_do_nothing().returning(table.c[key])
    return set((await session.scalars(stmt)).all())

"""How a read reaches the database: on PostgreSQL with no transaction around it (under READ
COMMITTED each statement has its own snapshot anyway, and BEGIN and ROLLBACK would be two
round trips more); on SQLite inside one, which is one snapshot for all of its statements."""

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database


async def _in_transaction(session: AsyncSession) -> bool:
    await session.execute(text("SELECT 1"))
    raw = await (await session.connection()).get_raw_connection()
    driver: Any = raw.driver_connection
    if hasattr(driver, "is_in_transaction"):  # asyncpg
        return bool(driver.is_in_transaction())
    return bool(driver.in_transaction)  # storage.sqlite_driver


async def test_a_read_is_in_a_transaction_only_on_sqlite(db: Database) -> None:
    async with db.read() as session:
        assert await _in_transaction(session) == db.is_sqlite
    async with db.write() as session:
        assert await _in_transaction(session)

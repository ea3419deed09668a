"""SQLite's statements make one trip to the driver's thread, and still answer as sqlite3 does.

Compare-and-set updates read their outcome from the row count, inserts their ids from
RETURNING or lastrowid, and a taken key must still raise IntegrityError: each is checked here
through the bot's own engine, on a real file.
"""

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.database import Database
from storage.sqlite_driver import OneTripConnection
from storage.statements import rowcount


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.write() as session:
        await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    return database


async def test_the_bots_sqlite_engine_uses_the_one_trip_connection(sqlite_db: Database) -> None:
    async with sqlite_db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, OneTripConnection)
    await sqlite_db.dispose()


async def test_counts_ids_and_rows_come_back_as_sqlite3_gives_them(sqlite_db: Database) -> None:
    async with sqlite_db.write() as session:
        inserted = await session.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert isinstance(inserted, CursorResult)
        assert inserted.lastrowid == 1
        returned = await session.execute(text("INSERT INTO t (v) VALUES ('b') RETURNING id"))
        assert returned.scalar_one() == 2
        many = await session.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": "c"}, {"v": "d"}, {"v": "e"}]
        )
        assert rowcount(many) == 3
    async with sqlite_db.write() as session:
        updated = await session.execute(text("UPDATE t SET v = v || '!' WHERE id <= 2"))
        assert rowcount(updated) == 2
        missed = await session.execute(text("UPDATE t SET v = 'x' WHERE id = 99"))
        assert rowcount(missed) == 0
        claimed = await session.execute(
            text("UPDATE t SET v = v || '?' WHERE id >= 3 RETURNING id")
        )
        assert sorted(claimed.scalars()) == [3, 4, 5]
        assert rowcount(claimed) == 3
    async with sqlite_db.read() as session:
        rows = (await session.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert [tuple(row) for row in rows] == [
            (1, "a!"),
            (2, "b!"),
            (3, "c?"),
            (4, "d?"),
            (5, "e?"),
        ]
        assert (await session.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None
    await sqlite_db.dispose()


async def test_a_failed_statement_raises_and_its_transaction_changes_nothing(
    sqlite_db: Database,
) -> None:
    async def twice() -> None:
        async with sqlite_db.write() as session:
            await session.execute(text("INSERT INTO t (v) VALUES ('same')"))
            await session.execute(text("INSERT INTO t (v) VALUES ('same')"))

    async def nowhere() -> None:
        async with sqlite_db.read() as session:
            await session.execute(text("SELECT nothing FROM nowhere"))

    with pytest.raises(IntegrityError):
        await twice()
    with pytest.raises(OperationalError):
        await nowhere()
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    await sqlite_db.dispose()


async def test_a_database_named_by_uri_opens_where_the_uri_says(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///file:{tmp_path / 'by_uri.db'}?uri=true")
    async with database.write() as session:
        await session.execute(text("CREATE TABLE m (id INTEGER PRIMARY KEY)"))
        await session.execute(text("INSERT INTO m DEFAULT VALUES"))
    async with database.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM m"))).scalar_one() == 1
    await database.dispose()
    assert (tmp_path / "by_uri.db").exists()


async def test_a_transaction_costs_a_trip_per_statement_and_one_to_end_it(
    sqlite_db: Database,
) -> None:
    """BEGIN goes with the first statement, and the pool's reset after a commit finds nothing
    to roll back: a read of one statement is two trips, where it was four."""
    async with sqlite_db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, OneTripConnection)
    before = driver.trips
    async with sqlite_db.read() as session:
        await session.execute(text("SELECT count(*) FROM t"))
    assert driver.trips - before == 2
    before = driver.trips
    async with sqlite_db.write() as session:
        await session.execute(text("INSERT INTO t (v) VALUES ('one')"))
        await session.execute(text("INSERT INTO t (v) VALUES ('two')"))
    assert driver.trips - before == 3
    before = driver.trips
    async with sqlite_db.write():
        pass  # began and ended with nothing in it: nothing to send
    assert driver.trips - before == 0
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
    await sqlite_db.dispose()


async def test_a_write_that_fails_after_its_begin_is_rolled_back_whole(
    sqlite_db: Database,
) -> None:
    async def half() -> None:
        async with sqlite_db.write() as session:
            await session.execute(text("INSERT INTO t (v) VALUES ('kept?')"))
            await session.execute(text("INSERT INTO nowhere VALUES (1)"))

    with pytest.raises(OperationalError):
        await half()
    async with sqlite_db.write() as session:  # the write lock was let go
        await session.execute(text("INSERT INTO t (v) VALUES ('after')"))
    async with sqlite_db.read() as session:
        rows = (await session.execute(text("SELECT v FROM t"))).scalars().all()
    assert rows == ["after"]
    await sqlite_db.dispose()

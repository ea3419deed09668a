"""SQLite under asyncio with one trip to the connection's thread per statement.

aiosqlite keeps each sqlite3 connection on a thread of its own, which is right: a statement
that waits (on another process's lock, on a checkpoint's fsync) must not block the event loop.
But through SQLAlchemy's adapter a statement makes four trips there (open a cursor, execute,
fetch, close), each a queue hand-off and a wake-up of the loop. Measured on the benchmark
machine (2026-12-01, 3,000 primary-key SELECTs through SQLAlchemy's async engine): 307 µs a
statement that way, 129 µs when the cursor does the whole statement in one trip. This module
is that cursor, on aiosqlite's own connection and thread (`aiosqlite.Connection._execute`
queues work there), handed to SQLAlchemy through `create_async_engine(async_creator=...)`;
`tests/db/test_sqlite_driver.py` guards that the engine uses it and that it answers as
sqlite3 does.
"""

import sqlite3
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

ITER_CHUNK_SIZE = 64  # aiosqlite's default; only its own iterating cursors read it

# What one trip brings back: description, rowcount, lastrowid, rows.
_Outcome = tuple[Any, int, int | None, list[Any]]


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        # For an UPDATE … RETURNING the count is only complete once every row was read.
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _execute_many(connection: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneTripCursor:
    """The async cursor SQLAlchemy's aiosqlite adapter drives: it executes and fetches in one
    trip, then answers `fetchall`, `description` and the counts from what it brought back."""

    def __init__(self, connection: "OneTripConnection") -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> "OneTripCursor":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = ()) -> "OneTripCursor":
        outcome = await self._connection.trip(_execute, sql, parameters)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "OneTripCursor":
        outcome = await self._connection.trip(_execute_many, sql, list(parameters))
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection (its thread, commit, rollback, close), with cursors that make
    one trip per statement."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def trip(self, work: Any, *args: Any) -> Any:
        """Run `work(sqlite3_connection, *args)` on the connection's thread."""
        return await self._execute(work, self._conn, *args)  # type: ignore[no-untyped-call]


async def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """As `aiosqlite.connect`, with `sqlite3.connect`'s arguments."""
    connection = OneTripConnection(
        partial(sqlite3.connect, database, **kwargs), iter_chunk_size=ITER_CHUNK_SIZE
    )
    connection._thread.daemon = True  # as SQLAlchemy makes aiosqlite's: exit never waits on it
    await connection
    return connection

"""SQLite under asyncio with one trip to the connection's thread per statement.

aiosqlite keeps each sqlite3 connection on a thread of its own, which is right: a statement
that waits (on another process's lock, on a checkpoint's fsync) must not block the event loop.
But through SQLAlchemy's adapter a statement makes four trips there (open a cursor, execute,
fetch, close), each a queue hand-off and a wake-up of the loop, and a transaction two more
(its BEGIN, and the pool's rollback when the connection comes back, even after a commit).
Measured on the benchmark machine (2026-12-01, through SQLAlchemy's async engine): a
primary-key SELECT took 307 µs that way and 129 µs in one trip; a read transaction of one
statement, 4 trips and about 450 µs.

Here a statement is one trip; a transaction's BEGIN travels with its first statement; a
commit or rollback with no transaction open (the pool's reset) makes no trip. This runs on
aiosqlite's own connection and thread (`aiosqlite.Connection._execute` queues work there) and
reaches SQLAlchemy through `create_async_engine(async_creator=...)`;
`tests/db/test_sqlite_driver.py` guards that the engine uses it and that it answers as sqlite3
does.
"""

import sqlite3
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

ITER_CHUNK_SIZE = 64  # aiosqlite's default; only its own iterating cursors read it
BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "BEGIN DEFERRED"})


class _Outcome:
    """What one trip brings back, read on the connection's thread."""

    __slots__ = ("description", "in_transaction", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, rows: list[Any]) -> None:
        self.description = cursor.description
        # For an UPDATE … RETURNING the count is only complete once every row was read.
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.rows = rows
        self.in_transaction = cursor.connection.in_transaction


def _statement(
    connection: sqlite3.Connection, begin: str | None, sql: str, parameters: Any, many: bool
) -> _Outcome:
    """One statement (`executemany` when `many`: no rows come back), after `begin` if any."""
    if begin is not None:
        connection.execute(begin)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
            return _Outcome(cursor, [])
        cursor.execute(sql, parameters)
        return _Outcome(cursor, cursor.fetchall() if cursor.description else [])
    finally:
        cursor.close()


def _end(connection: sqlite3.Connection, commit: bool) -> None:
    if commit:
        connection.commit()
    else:
        connection.rollback()


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
        if not parameters and sql.strip().upper() in BEGINS:
            self._connection.begin_with_next(sql)
            self.description, self.rowcount, self.lastrowid, self._rows = None, -1, None, []
            return self
        self._took(await self._connection.statement(sql, parameters, many=False))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "OneTripCursor":
        self._took(await self._connection.statement(sql, list(parameters), many=True))
        return self

    def _took(self, outcome: _Outcome) -> None:
        self.description, self.rowcount = outcome.description, outcome.rowcount
        self.lastrowid, self._rows = outcome.lastrowid, outcome.rows

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
    """aiosqlite's connection (its thread, close, stop), with cursors that make one trip per
    statement, a BEGIN that travels with the statement after it, and commits and rollbacks
    that make no trip when no transaction is open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trips = 0  # how many times work went to the connection's thread (tests read it)
        self._begin: str | None = None
        self._in_transaction = False

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    @property
    def in_transaction(self) -> bool:
        """As sqlite3's, as of the last trip."""
        return self._in_transaction

    def begin_with_next(self, sql: str) -> None:
        self._begin = sql

    async def statement(self, sql: str, parameters: Any, *, many: bool) -> _Outcome:
        begin, self._begin = self._begin, None
        try:
            outcome: _Outcome = await self._trip(_statement, begin, sql, parameters, many)
        except BaseException:
            self._in_transaction = self._in_transaction or begin is not None
            raise
        self._in_transaction = outcome.in_transaction
        return outcome

    async def commit(self) -> None:
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        self._begin = None  # a transaction with no statement never began
        if not self._in_transaction:
            return
        await self._trip(_end, commit)
        self._in_transaction = False

    async def _trip(self, work: Any, *args: Any) -> Any:
        """Run `work(sqlite3_connection, *args)` on the connection's thread."""
        self.trips += 1
        return await self._execute(work, self._conn, *args)  # type: ignore[no-untyped-call]


async def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """As `aiosqlite.connect`, with `sqlite3.connect`'s arguments."""
    connection = OneTripConnection(
        partial(sqlite3.connect, database, **kwargs), iter_chunk_size=ITER_CHUNK_SIZE
    )
    connection._thread.daemon = True  # as SQLAlchemy makes aiosqlite's: exit never waits on it
    await connection
    return connection

"""One async engine per process, and the two kinds of transaction the bot needs.

SQLite allows one writer at a time, and a deferred transaction that reads before it writes can
fail with "database is locked" however long the busy timeout. So on SQLite every write
transaction starts with BEGIN IMMEDIATE, and writers of one process queue on an asyncio lock
rather than on SQLite's sleep-and-retry busy handler. PostgreSQL needs neither: row locks and
compare-and-set updates do the work there.
"""

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

from opentelemetry.trace import Status, StatusCode, Tracer
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import ConnectionPoolEntry

from storage import sqlite_driver
from storage.crypto import Cipher
from storage.models import CIPHER_ATTRIBUTE

SQLITE_BUSY_TIMEOUT_MS = 15_000
# What a query raises when the database cannot be reached or fails under it.
UNAVAILABLE = (SQLAlchemyError, OSError)
REACHABLE_WITHIN = 2.0  # seconds a health check waits for the database
DRIVER_THREAD_GRACE = 2.0  # seconds each SQLite driver thread gets to finish at exit
_WRITE_OPTION = "threadgate_write"


class Database:
    """Owns the engine; hands out read and write sessions that commit or roll back as a unit."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        cipher: Cipher | None = None,
        tracer: Tracer | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        # Observability without importing the bot: a span per transaction when traced, and
        # `on_error("read" | "write")` for each transaction the database failed.
        self.tracer = tracer
        self.on_error = on_error
        self.url = url
        self.cipher = cipher
        # A statement's parameters are conversation content: keep them out of echo output and
        # out of the text of every error SQLAlchemy raises (and so out of logged tracebacks).
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": False, "hide_parameters": True}
        if url.startswith("sqlite"):
            kwargs["async_creator"] = _one_trip_creator(url)
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        setattr(self.engine.dialect, CIPHER_ATTRIBUTE, cipher)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        # On PostgreSQL a read needs no transaction: under READ COMMITTED each statement sees
        # a snapshot of its own either way, so a read in autocommit sees the same rows and
        # spares the BEGIN and ROLLBACK round trips. SQLite's reads keep their transaction:
        # there it is one snapshot for all of their statements.
        reads = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._reader = async_sessionmaker(
            reads, expire_on_commit=False, sync_session_class=StorageSession
        )
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE_OPTION: True}),
            expire_on_commit=False,
            sync_session_class=StorageSession,
        )
        self._write_lock = PriorityLock() if self.is_sqlite else None
        # On PostgreSQL the urgent writes get connections of their own, so an ack never
        # waits for a connection that background runs are holding.
        self._urgent_engine: AsyncEngine | None = None
        self._urgent_writer = self._writer
        if not self.is_sqlite:
            self._urgent_engine = create_async_engine(
                url,
                echo=echo,
                pool_size=2,
                max_overflow=4,
                pool_pre_ping=False,
                hide_parameters=True,
            )
            setattr(self._urgent_engine.dialect, CIPHER_ATTRIBUTE, cipher)
            self._urgent_writer = async_sessionmaker(
                self._urgent_engine, expire_on_commit=False, sync_session_class=StorageSession
            )

    @contextmanager
    def _observed(self, kind: str) -> Iterator[None]:
        if self.tracer is None:
            try:
                yield
            except UNAVAILABLE:
                if self.on_error is not None:
                    self.on_error(kind)
                raise
            return
        with self.tracer.start_as_current_span(
            f"db.{kind}",
            attributes={"db.system": self.engine.dialect.name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except UNAVAILABLE as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                if self.on_error is not None:
                    self.on_error(kind)
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        with self._observed("read"):
            async with self._reader() as session:
                yield session

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success; on SQLite it holds the write lock throughout.

        `urgent` is for the few writes a Slack request waits on before its ack: on SQLite they
        go ahead of queued background writes, on PostgreSQL they have their own connections.
        """
        with self._observed("write"):
            if self._write_lock is None:
                maker = self._urgent_writer if urgent else self._writer
                async with maker() as session, session.begin():
                    yield session
                return
            await self._write_lock.acquire(urgent=urgent)
            try:
                async with self._writer() as session, session.begin():
                    yield session
            finally:
                self._write_lock.release()

    async def reachable(self) -> bool:
        """Can a query get through now? For health checks: never raises."""
        try:
            async with asyncio.timeout(REACHABLE_WITHIN), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._urgent_engine is not None:
            await self._urgent_engine.dispose()


class StorageSession(Session):
    """Our UPDATE and DELETE statements are compare-and-set: their outcome is read from the
    row count, and a row needed afterwards is read again (`refresh`, `populate_existing`). So
    the ORM's default of evaluating each one against every object the session holds is work
    for nothing on every hot path; a statement that wants it can still ask for it."""


@event.listens_for(StorageSession, "do_orm_execute")
def _skip_identity_map_sync(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and "synchronize_session" not in (
        state.execution_options
    ):
        state.update_execution_options(synchronize_session=False)


async def driver_threads_finished() -> None:
    """Let aiosqlite's worker threads finish while the event loop still runs.

    A connection that fails to open (say, the SQLite file's directory is missing) is stopped by
    a job on its worker thread, which then reports back to the event loop. A command that fails
    fast and exits can close the loop first, and the thread then dies printing a traceback
    after the command's one-line error. Call this last, with every engine disposed.
    """
    workers = [
        thread
        for thread in threading.enumerate()
        if thread.name.endswith("(_connection_worker_thread)")
    ]
    for thread in workers:
        await asyncio.to_thread(thread.join, DRIVER_THREAD_GRACE)


def _one_trip_creator(url: str) -> Callable[[], Awaitable[sqlite_driver.OneTripConnection]]:
    """Connections as SQLAlchemy's aiosqlite dialect would open them (the same file, URI and
    thread arguments), whose statements each make one trip to the driver's thread."""
    parsed = make_url(url)
    args, options = parsed.get_dialect()().create_connect_args(parsed)
    return partial(sqlite_driver.connect, *args, **options)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class PriorityLock:
    """A FIFO lock whose urgent waiters are woken before the others."""

    def __init__(self) -> None:
        self._locked = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._locked and not self._urgent and not self._normal:
            self._locked = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the lock was handed to us as we were cancelled
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the lock passes straight to this waiter
                    return
        self._locked = False

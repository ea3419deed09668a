"""A fresh, migrated database per scenario: a temp SQLite file, or a scratch PostgreSQL database
created under a unique name and dropped afterwards, whatever happens in between."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import asyncpg
from sqlalchemy.engine import make_url

from storage import schema
from storage.database import Database

DbKind = Literal["sqlite", "postgres"]
PG_ADMIN_DSN = os.environ.get("THREADGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_address() -> str:
    """The admin DSN without its password, for messages."""
    return make_url(PG_ADMIN_DSN).render_as_string(hide_password=True)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def postgres_version() -> str | None:
    """The server's version string, or None when PostgreSQL is not reachable."""
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return str(version)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def migrate(url: str) -> None:
    db = Database(url)
    try:
        await schema.upgrade(db)
    finally:
        await db.dispose()


@asynccontextmanager
async def scratch_database(kind: DbKind, workdir: Path) -> AsyncIterator[str]:
    """Yields the SQLAlchemy URL of an empty, migrated database."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await migrate(url)
        try:
            yield url
        finally:
            _remove_sqlite_files(path)
        return
    name = "threadgate_bench_" + uuid.uuid4().hex[:10]
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        url = f"{base}/{name}"
        await migrate(url)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

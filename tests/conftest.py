"""Shared fixtures: a database per backend, and a guard against reaching the real world.

PostgreSQL tests use a database created for this test run and emptied before each test. With
CI=true an unreachable PostgreSQL fails the run instead of skipping.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import schema
from storage.database import Database

PG_ADMIN_DSN = os.environ.get("THREADGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}  # noqa: S104
_TABLES = (
    "thread_approvals, approval_decisions, approvals, jobs, runs, threads, slack_events, "
    "outbox, feedback, agent_messages, agent_sessions, slack_installations, oauth_states"
)


@pytest.fixture(autouse=True)
def no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to resolve a host that is not this machine (Slack, OpenAI)."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name not in _LOCAL_HOSTS and not name.startswith("127."):
            raise AssertionError(f"test tried to reach {name!r}: use the fakes")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def _pg_reachable() -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN} and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = "threadgate_test_" + uuid.uuid4().hex[:10]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"

    async def migrate() -> None:
        db = Database(url)
        await schema.upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'threadgate.db'}"
    url: str = request.getfixturevalue("pg_url")
    asyncio.run(empty_database(url))
    return url


async def empty_database(url: str) -> None:
    """Every test starts from empty tables in the run's own, already migrated database."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    if database.is_sqlite:
        await schema.upgrade(database)
    yield database
    await database.dispose()

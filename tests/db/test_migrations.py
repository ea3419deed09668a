"""Migrations upgrade a database in place, with its data, on both databases."""

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from storage import schema
from storage.database import Database
from tests.conftest import PG_ADMIN_DSN

ROWS: dict[str, list[dict[str, Any]]] = {
    "slack_events": [{"event_id": "Ev1", "received_at": "2026-01-01 00:00:00+00:00"}],
    "threads": [
        {
            "key": "T1:C1:1.0",
            "team_id": "T1",
            "channel_id": "C1",
            "thread_ts": "1.0",
            "created_at": "2026-01-01 00:00:00+00:00",
        }
    ],
    "runs": [
        {
            "id": "run_1",
            "thread_key": "T1:C1:1.0",
            "status": "waiting",
            "requested_by": "U1",
            "generation": 1,
            "state": '{"$schemaVersion": "1.21"}',
            "created_at": "2026-01-01 00:00:00+00:00",
            "updated_at": "2026-01-01 00:00:00+00:00",
        }
    ],
    "jobs": [
        {
            "thread_key": "T1:C1:1.0",
            "kind": "message",
            "status": "done",
            "dedupe_key": "msg:T1:C1:1.0",
            "text": "hello",
            "created_at": "2026-01-01 00:00:00+00:00",
        }
    ],
    "approvals": [
        {
            "id": "ap_1",
            "run_id": "run_1",
            "generation": 1,
            "team_id": "T1",
            "channel_id": "C1",
            "thread_ts": "1.0",
            "call_id": "call_1",
            "tool_name": "delete_customer",
            "arguments": '{"customer_id": "c1"}',
            "requested_by": "U1",
            "approvers": '["U9"]',
            "status": "pending",
            "expires_at": "2026-01-02 00:00:00+00:00",
            "created_at": "2026-01-01 00:00:00+00:00",
        }
    ],
    "agent_sessions": [{"session_id": "T1:C1:1.0"}],
    "agent_messages": [
        {"session_id": "T1:C1:1.0", "message_data": '{"role": "user", "content": "hello"}'}
    ],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def upgrade_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nothing has touched yet: its own file, or its own PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}"
        return
    request.getfixturevalue("pg_url")  # PostgreSQL is reachable (or, with CI=true, fail)
    name = "threadgate_upgrade_" + uuid.uuid4().hex[:10]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def empty_db(upgrade_url: str) -> AsyncIterator[Database]:
    db = Database(upgrade_url)
    yield db
    await db.dispose()


def _literal(value: Any, dialect: str) -> Any:
    if isinstance(value, str) and value.endswith("+00:00") and dialect == "postgresql":
        return datetime.fromisoformat(value)
    return value


async def _insert_rows(db: Database) -> None:
    dialect = db.engine.dialect.name
    async with db.engine.begin() as conn:
        for table, rows in ROWS.items():
            for row in rows:
                columns = ", ".join(row)
                params = ", ".join(f":{c}" for c in row)
                values = {k: _literal(v, dialect) for k, v in row.items()}
                if dialect == "postgresql" and table == "approvals":
                    params = params.replace(":approvers", "CAST(:approvers AS JSON)")
                await conn.execute(
                    text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), values
                )


async def test_upgrading_from_the_first_migration_keeps_every_row(empty_db: Database) -> None:
    await schema.upgrade(empty_db, "0001")
    await _insert_rows(empty_db)

    await schema.upgrade(empty_db)

    assert await schema.current_revision(empty_db) == schema.head_revision()
    async with empty_db.engine.connect() as conn:
        for table, rows in ROWS.items():
            count = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
            assert count == len(rows), table
        run = (await conn.execute(text("SELECT state, status FROM runs"))).one()
        assert run.state == '{"$schemaVersion": "1.21"}'
        assert run.status == "waiting"
        approval = (
            await conn.execute(text("SELECT arguments, status, executed_at FROM approvals"))
        ).one()
        assert approval.arguments == '{"customer_id": "c1"}'
        assert approval.status == "pending"
        assert approval.executed_at is None
        for table in ("runs", "approvals"):
            requesters = await conn.scalar(text(f"SELECT requesters FROM {table}"))
            as_list = json.loads(requesters) if isinstance(requesters, str) else requesters
            assert as_list == ["U1"], table
        message = await conn.scalar(text("SELECT message_data FROM agent_messages"))
        assert "hello" in message
        assert await conn.scalar(text("SELECT approvals_needed FROM approvals")) == 1
        # Unknown, not "no files": the job's run reads its thread as it always did.
        assert await conn.scalar(text("SELECT has_files FROM jobs")) is None


async def test_approvals_waiting_before_quorums_need_one_approver(empty_db: Database) -> None:
    await schema.upgrade(empty_db, "0006")
    await _insert_rows(empty_db)

    await schema.upgrade(empty_db)

    async with empty_db.engine.connect() as conn:
        approval = (
            await conn.execute(text("SELECT id, status, approvals_needed FROM approvals"))
        ).one()
        assert tuple(approval) == ("ap_1", "pending", 1)
        assert await conn.scalar(text("SELECT count(*) FROM approval_decisions")) == 0


async def test_the_models_and_the_migrations_describe_the_same_schema(empty_db: Database) -> None:
    await schema.upgrade(empty_db)

    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_conn,
            opts={
                "compare_type": True,
                "include_object": lambda _o, name, kind, _r, _c: (
                    not (kind == "table" and name in {"agent_sessions", "agent_messages"})
                ),
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_migrating_twice_is_harmless(empty_db: Database) -> None:
    await schema.upgrade(empty_db)
    await schema.upgrade(empty_db)
    assert await schema.is_up_to_date(empty_db)


async def test_the_head_the_app_checks_for_is_alembics_head(empty_db: Database) -> None:
    assert schema.head_revision() == schema.HEAD_REVISION
    assert await schema.current_revision(empty_db) is None
    assert not await schema.is_up_to_date(empty_db)

    await schema.upgrade_if_behind(empty_db)

    assert await schema.current_revision(empty_db) == schema.HEAD_REVISION
    assert await schema.is_up_to_date(empty_db)


def test_starting_on_an_up_to_date_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic stays out of a serving process's memory unless it has something to migrate."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    probe = (
        "import asyncio, sys\n"
        "from storage import schema\n"
        "from storage.database import Database\n"
        "async def main(url):\n"
        "    db = Database(url)\n"
        "    await schema.upgrade_if_behind(db)\n"
        "    await db.dispose()\n"
        "asyncio.run(main(sys.argv[1]))\n"
        "print('alembic' in sys.modules)\n"
    )
    run = partial(
        subprocess.run,
        [sys.executable, "-c", probe, url],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    first, second = run(check=True), run(check=True)
    assert (first.stdout.strip(), second.stdout.strip()) == ("True", "False")

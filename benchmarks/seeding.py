"""Bulk rows that make the database look used: other threads' pending approvals, and a thread's
earlier conversation. Inserted directly, in batches, while the bot is idle."""

import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

from agents import TResponseInputItem
from agents.extensions.memory import SQLAlchemySession
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from benchmarks.harness import APPROVER, ASKER, CHANNEL
from storage.database import Database
from storage.models import ApprovalStatus, JobKind, JobStatus, RunStatus, utcnow

BATCH = 1000
# A paused run's state with a short history is about 5 KB of JSON (DESIGN.md section 3).
STATE_FILLER = json.dumps({"$schemaVersion": "1.0", "filler": "x" * 5000})


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def _pending_rows(team_id: str, index: int) -> dict[str, dict[str, Any]]:
    now = utcnow()
    thread_ts = f"1500000000.{index:06d}"
    key = f"{team_id}:{CHANNEL}:{thread_ts}"
    run_id = "run_" + uuid.uuid4().hex
    return {
        "threads": {
            "key": key,
            "team_id": team_id,
            "channel_id": CHANNEL,
            "thread_ts": thread_ts,
            "created_at": now,
        },
        "jobs": {
            "thread_key": key,
            "kind": JobKind.MESSAGE,
            "status": JobStatus.DONE,
            "dedupe_key": f"msg:{team_id}:{CHANNEL}:{thread_ts}",
            "user_id": ASKER,
            "message_ts": thread_ts,
            "text": "please delete customer c42",
            "created_at": now,
            "finished_at": now,
        },
        "runs": {
            "id": run_id,
            "thread_key": key,
            "status": RunStatus.WAITING,
            "requested_by": ASKER,
            "requesters": [ASKER],
            "generation": 1,
            "state": STATE_FILLER,
            "sdk_version": "0.24.0",
            "state_schema_version": "1.0",
            "created_at": now,
            "updated_at": now,
        },
        "approvals": {
            "id": "ap_" + secrets.token_urlsafe(18),
            "run_id": run_id,
            "generation": 1,
            "team_id": team_id,
            "channel_id": CHANNEL,
            "thread_ts": thread_ts,
            "message_ts": thread_ts,
            "call_id": "call_" + uuid.uuid4().hex,
            "tool_name": "delete_customer",
            "arguments": '{"customer_id": "c42"}',
            "requested_by": ASKER,
            "requesters": [ASKER],
            "approvers": [APPROVER],
            "status": ApprovalStatus.PENDING,
            "expires_at": now + timedelta(days=1),
            "created_at": now,
        },
    }


async def add_pending_approvals(db: Database, *, team_id: str, start: int, count: int) -> None:
    """`count` more threads, each with a done job, a waiting run and its pending approval."""
    for first in range(start, start + count, BATCH):
        rows = [_pending_rows(team_id, i) for i in range(first, min(first + BATCH, start + count))]
        async with db.write() as session:
            for table in ("threads", "jobs", "runs", "approvals"):
                await session.execute(insert(_table(table)), [row[table] for row in rows])
    await settle(db)


async def settle(db: Database) -> None:
    """Leave the database as rows arriving over days would: on SQLite the bulk insert's WAL is
    checkpointed (the WAL auto-checkpoints every 1,000 pages in normal use); on PostgreSQL the
    planner gets statistics (autovacuum's ANALYZE)."""
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()


def history_items(count: int) -> list[TResponseInputItem]:
    """Alternating questions and answers of a plausible length."""
    items: list[TResponseInputItem] = []
    for i in range(count):
        if i % 2 == 0:
            items.append({"role": "user", "content": f"Question {i}: " + "how do I do this? " * 8})
        else:
            items.append(
                {
                    "id": f"msg_{uuid.uuid4().hex}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": f"Answer {i}: " + "do it so. " * 20,
                            "annotations": [],
                        }
                    ],
                }
            )
    return items


async def add_history(engine: AsyncEngine, *, thread_key: str, count: int) -> None:
    """The thread's earlier messages, through the SDK's own session (one transaction)."""
    await SQLAlchemySession(thread_key, engine=engine).add_items(history_items(count))

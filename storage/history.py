"""A thread's conversation history, in the tables the Agents SDK's SQLAlchemySession created.

The rows stay in the SDK's own layout (one JSON item per `agent_messages` row, one
`agent_sessions` row per thread, ordered by `created_at` then `id`), so history written by
earlier versions reads back as it was and the SDK's session could still read ours.

What differs is when they are written: a run's new items are appended inside the transaction
that records how the run ended or paused, so the history and the run's state never disagree,
and a run cut short by a crash leaves no half of itself behind for its retry to repeat.

With a key set, each row is an envelope, `{"threadgate_sealed": 1, "payload": <sealed item>}`:
still a JSON object, as the SDK's layout wants, with nothing readable in it.
"""

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import TIMESTAMP, Integer, String, Text, bindparam, column, delete, select, table
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import Cipher, DecryptionError, unseal
from storage.database import Database
from storage.statements import dialect_of

ENVELOPE_KEY = "threadgate_sealed"
ENVELOPE_VERSION = 1

# Only the columns we touch. Timestamps are naive, set by the database's CURRENT_TIMESTAMP.
agent_sessions = table(
    "agent_sessions",
    column("session_id", String),
    column("updated_at", TIMESTAMP),
)
agent_messages = table(
    "agent_messages",
    column("id", Integer),
    column("session_id", String),
    column("message_data", Text),
    column("created_at", TIMESTAMP),
)


def seal_item(cipher: Cipher | None, row: str) -> str:
    """One stored row for one JSON item: the item itself, or its envelope under the key."""
    if cipher is None:
        return row
    return _envelope(cipher.encrypt(row))


def open_item(cipher: Cipher | None, row: str) -> Any:
    """The item a stored row holds; None for a row that is not JSON (the SDK skips those too).

    With `cipher=None` a sealed row is refused, so a deployment that switches encryption off
    fails loudly instead of sending ciphertext to the model.
    """
    try:
        raw: Any = json.loads(row)
    except ValueError:
        return None
    if not isinstance(raw, dict) or ENVELOPE_KEY not in raw:
        return raw
    return json.loads(unseal(cipher, _payload(raw)))


def reseal_item(cipher: Cipher, row: str) -> str | None:
    """The row sealed with the first key, or None when there is nothing to do: it already is,
    or it is not JSON (no item, so the SDK and `open_item` skip it). Rows written before
    encryption was switched on are sealed too."""
    try:
        raw: Any = json.loads(row)
    except ValueError:
        return None
    if not isinstance(raw, dict) or ENVELOPE_KEY not in raw:
        return seal_item(cipher, row)
    payload = _payload(raw)
    return None if cipher.is_current(payload) else _envelope(cipher.reencrypt(payload))


def _envelope(sealed: str) -> str:
    return json.dumps({ENVELOPE_KEY: ENVELOPE_VERSION, "payload": sealed}, separators=(",", ":"))


def _payload(envelope: dict[str, Any]) -> str:
    payload = envelope.get("payload")
    if (
        envelope[ENVELOPE_KEY] != ENVELOPE_VERSION
        or not isinstance(payload, str)
        or not Cipher.is_sealed(payload)
    ):
        raise DecryptionError("a stored history item has an unknown envelope format")
    return payload


# Every run reads its window and every answer appends: built once, bound each time.
_ITEMS = select(agent_messages.c.message_data).where(
    agent_messages.c.session_id == bindparam("thread_key")
)
_ALL_ITEMS = _ITEMS.order_by(agent_messages.c.created_at, agent_messages.c.id)
_NEWEST_ITEMS = _ITEMS.order_by(
    agent_messages.c.created_at.desc(), agent_messages.c.id.desc()
).limit(bindparam("limit", type_=Integer))
_INSERT_ITEMS = agent_messages.insert()


async def newest(session: AsyncSession, *, thread_key: str, limit: int | None) -> list[str]:
    """The thread's newest `limit` items (all of them for None), oldest first."""
    if limit is None:
        return list(await session.scalars(_ALL_ITEMS, {"thread_key": thread_key}))
    rows = await session.scalars(_NEWEST_ITEMS, {"thread_key": thread_key, "limit": limit})
    return list(rows)[::-1]


async def read_newest(db: Database, *, thread_key: str, limit: int | None) -> list[str]:
    async with db.read() as session:
        return await newest(session, thread_key=thread_key, limit=limit)


def _touch(module: Any) -> Any:
    return (
        module.insert(agent_sessions)
        .values(session_id=bindparam("session_id"))
        .on_conflict_do_update(
            index_elements=[agent_sessions.c.session_id],
            set_={"updated_at": sql_text("CURRENT_TIMESTAMP")},
        )
    )


# Every answer and pause upserts its thread's session row: built once per dialect, not per call.
_TOUCH = {"postgresql": _touch(postgresql), "sqlite": _touch(sqlite)}


async def append(session: AsyncSession, *, thread_key: str, items: Sequence[str]) -> None:
    """Two statements however many items: the session row is upserted, the items inserted."""
    if not items:
        return
    await session.execute(_TOUCH[dialect_of(session)], {"session_id": thread_key})
    # executemany: one compiled statement for any number of items, sent as multi-row INSERTs
    await session.execute(
        _INSERT_ITEMS, [{"session_id": thread_key, "message_data": item} for item in items]
    )


async def pop_newest(db: Database, *, thread_key: str) -> str | None:
    m = agent_messages.c
    async with db.write() as session:
        row = (
            await session.execute(
                select(m.id, m.message_data)
                .where(m.session_id == thread_key)
                .order_by(m.created_at.desc(), m.id.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        await session.execute(delete(agent_messages).where(m.id == row.id))
        return str(row.message_data)


async def clear(db: Database, *, thread_key: str) -> None:
    async with db.write() as session:
        await session.execute(
            delete(agent_messages).where(agent_messages.c.session_id == thread_key)
        )
        await session.execute(
            delete(agent_sessions).where(agent_sessions.c.session_id == thread_key)
        )

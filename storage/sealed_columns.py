"""Every column that holds sealed (possibly encrypted) text, in one list, and the two things
done to all of them: the start-up check that the keys open them, and `reencrypt`.

The columns are read and written here as the raw text they store, never through SealedText,
so a value is opened or resealed exactly once and by the rules of its column.

`reencrypt` lets an old key be dropped: it rewrites every value that the first key did not
seal. It is safe while the bot serves and resumable:
- it walks each table once by primary key, in batches, each batch one short transaction;
- a value already sealed with the first key is left alone, so a rerun after an interruption
  rewrites only what is left (what it did before, it reads again and skips);
- each write is a compare-and-set on the value it read, and rows the bot holds locked are
  skipped rather than waited for: a concurrent write by the bot is never overwritten, and the
  summary says to run it again if anything was skipped.
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, Text, column, select, table, update
from sqlalchemy.sql.expression import TableClause

from storage import history
from storage.crypto import Cipher, DecryptionError, unseal
from storage.database import Database
from storage.statements import rowcount

REENCRYPT_BATCH = 200


def _open_text(cipher: Cipher | None, stored: str) -> None:
    unseal(cipher, stored)


def _reseal_text(cipher: Cipher, stored: str) -> str | None:
    return None if cipher.is_current(stored) else cipher.reencrypt(stored)


def _open_history(cipher: Cipher | None, stored: str) -> None:
    history.open_item(cipher, stored)


@dataclass(frozen=True)
class SealedColumn:
    """One sealed column: its table as stored, its key, and what "newest" means for it."""

    table: TableClause
    column: str
    key: str
    newest: tuple[str, ...]
    open: Callable[[Cipher | None, str], None] = _open_text
    reseal: Callable[[Cipher, str], str | None] = _reseal_text

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


def _stored(name: str, key: Any, sealed: tuple[str, ...], others: tuple[str, ...]) -> TableClause:
    """A table as stored: the sealed columns are plain Text here, so nothing unseals them."""
    return table(
        name, column("id", key), *(column(c, Text) for c in sealed), *(column(c) for c in others)
    )


_runs = _stored("runs", String, ("state",), ("updated_at",))
_approvals = _stored(
    "approvals", String, ("arguments", "reason", "outcome", "edited_arguments"), ("created_at",)
)
_jobs = _stored("jobs", Integer, ("text",), ())
_outbox = _stored("outbox", Integer, ("payload",), ())
_decisions = _stored("approval_decisions", Integer, ("reason",), ())
_installations = _stored(
    "slack_installations",
    Integer,
    ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token"),
    (),
)

# Every SealedText column of storage.models, and the SDK's history that storage.history seals;
# tests/db/test_sealed_columns.py holds this list to the models. The other tables hold no
# conversation content: ids, statuses and times (slack_events, threads), and `feedback`, which
# is who thought which answer good or bad, so none of them is sealed. The installations' tokens
# are sealed as secrets rather than as content.
SEALED_COLUMNS = (
    SealedColumn(_runs, "state", key="id", newest=("updated_at",)),
    SealedColumn(_approvals, "arguments", key="id", newest=("created_at",)),
    SealedColumn(_approvals, "reason", key="id", newest=("created_at",)),
    SealedColumn(_approvals, "outcome", key="id", newest=("created_at",)),
    SealedColumn(_approvals, "edited_arguments", key="id", newest=("created_at",)),
    SealedColumn(_decisions, "reason", key="id", newest=("id",)),
    SealedColumn(_jobs, "text", key="id", newest=("id",)),
    SealedColumn(_outbox, "payload", key="id", newest=("id",)),
    SealedColumn(_installations, "bot_token", key="id", newest=("id",)),
    SealedColumn(_installations, "bot_refresh_token", key="id", newest=("id",)),
    SealedColumn(_installations, "user_token", key="id", newest=("id",)),
    SealedColumn(_installations, "user_refresh_token", key="id", newest=("id",)),
    SealedColumn(
        history.agent_messages,
        "message_data",
        key="id",
        newest=("id",),
        open=_open_history,
        reseal=history.reseal_item,
    ),
)


async def check_stored_data_opens(db: Database) -> None:
    """Fail at start-up, not at someone's click, when the configured keys cannot read the data.

    Reads the newest non-null value of each sealed column; raises DecryptionError if one will
    not open.
    """
    async with db.read() as session:
        for sealed in SEALED_COLUMNS:
            value = sealed.table.c[sealed.column]
            newest = [sealed.table.c[name].desc() for name in sealed.newest]
            stored = await session.scalar(
                select(value).where(value.is_not(None)).order_by(*newest).limit(1)
            )
            if stored is not None:
                sealed.open(db.cipher, stored)


@dataclass
class ResealCounts:
    resealed: int = 0
    current: int = 0
    skipped: int = 0

    def __add__(self, other: "ResealCounts") -> "ResealCounts":
        return ResealCounts(
            self.resealed + other.resealed,
            self.current + other.current,
            self.skipped + other.skipped,
        )

    def __str__(self) -> str:
        line = f"{self.resealed} resealed, {self.current} already on the newest key"
        if self.skipped:
            line += f", {self.skipped} skipped as the bot was writing them (run it again)"
        return line


@dataclass(frozen=True)
class StoredValue:
    key: Any
    stored: str


async def read_batch(
    db: Database, sealed: SealedColumn, *, after: Any, limit: int = REENCRYPT_BATCH
) -> list[StoredValue]:
    """The next `limit` non-null values after key `after` (None: from the start), by key."""
    key, value = sealed.table.c[sealed.key], sealed.table.c[sealed.column]
    query = select(key, value).where(value.is_not(None)).order_by(key).limit(limit)
    if after is not None:
        query = query.where(key > after)
    async with db.read() as session:
        return [StoredValue(row[0], row[1]) for row in await session.execute(query)]


async def reseal_batch(
    db: Database, sealed: SealedColumn, batch: list[StoredValue]
) -> ResealCounts:
    """Rewrite the values of `batch` that the first key did not seal, in one transaction.

    The encryption happens before the transaction starts: on SQLite it holds every writer up.
    """
    cipher = _cipher(db)
    counts = ResealCounts()
    planned: list[tuple[StoredValue, str]] = []
    for value in batch:
        try:
            resealed = sealed.reseal(cipher, value.stored)
        except DecryptionError as exc:
            raise DecryptionError(f"{sealed.name} of {sealed.key} {value.key!r}: {exc}") from None
        if resealed is None:
            counts.current += 1
        else:
            planned.append((value, resealed))
    if not planned:
        return counts
    key, column_ = sealed.table.c[sealed.key], sealed.table.c[sealed.column]
    async with db.write() as session:
        # Never wait on a row the bot holds (no deadlock, no stalled click): skip it this time.
        locked = set(
            await session.scalars(
                select(key)
                .where(key.in_([value.key for value, _ in planned]))
                .with_for_update(skip_locked=True)
            )
        )
        for value, resealed in planned:
            changed = 0
            if value.key in locked:
                result = await session.execute(
                    update(sealed.table)
                    .where(key == value.key, column_ == value.stored)
                    .values({sealed.column: resealed})
                )
                changed = rowcount(result)
            if changed:
                counts.resealed += 1
            else:
                counts.skipped += 1
    return counts


async def reencrypt(
    db: Database, *, batch_size: int = REENCRYPT_BATCH
) -> AsyncIterator[tuple[str, ResealCounts]]:
    """Reseal every sealed column with the first key; yields each column's counts when done."""
    _cipher(db)
    for sealed in SEALED_COLUMNS:
        counts = ResealCounts()
        after = None
        while batch := await read_batch(db, sealed, after=after, limit=batch_size):
            counts += await reseal_batch(db, sealed, batch)
            after = batch[-1].key
            if len(batch) < batch_size:
                break
        yield sealed.name, counts


def _cipher(db: Database) -> Cipher:
    if db.cipher is None:
        raise ValueError("reencrypt needs an encryption key")
    return db.cipher

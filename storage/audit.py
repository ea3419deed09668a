"""The audit log: the story of every approval, for whoever must later prove who decided what.

Entries are appended by the repositories that make the change they record, inside the same
transaction, so the log never says something happened that did not, nor misses something
that did. The bot never updates an entry, and deletes one only by the log's own retention
(`[storage] audit_retain_days`), which is independent of the approvals' and keeps everything
by default. An entry holds ids and digests, never conversation content.
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.database import Database
from storage.models import Approval, AuditEntry, DecisionKind, utcnow
from storage.models import AuditEvent as AuditEvent  # the event names, for callers

SYSTEM_USER = "threadgate"
# The export's columns, in order: the names the issue of the audit log fixed.
FIELDS = (
    "at",
    "event",
    "approval_id",
    "run_id",
    "tool",
    "user",
    "team",
    "enterprise",
    "channel",
    "thread_ts",
    "rule",
    "arguments_sha256",
    "output_sha256",
    "detail",
)
EXPORT_BATCH = 1000

# What each entry of the decision log is in the audit log.
FOR_DECISION = {
    DecisionKind.APPROVE: AuditEvent.APPROVED,
    DecisionKind.REJECT: AuditEvent.REJECTED,
    DecisionKind.EXPIRE: AuditEvent.EXPIRED,
    DecisionKind.EDIT: AuditEvent.EDITED,
    DecisionKind.THREAD_APPROVAL: AuditEvent.THREAD_APPROVAL_GRANTED,
    DecisionKind.AUTO_APPROVAL: AuditEvent.AUTO_APPROVED,
    DecisionKind.REVOKE: AuditEvent.THREAD_APPROVAL_REVOKED,
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rule_of(approval: Approval) -> str | None:
    if approval.rule_index is None:
        return None
    return approval.rule_label or f"rule {approval.rule_index + 1}"


def asked(approval: Approval) -> str:
    """Who asked and what the call needs, as ids: the `requested` entry's detail."""
    needed = approval.approvals_needed
    approvers = ", ".join(approval.approvers) or "the tool's approvers"
    return (
        f"asked by {', '.join(approval.requesters or [approval.requested_by])}; "
        f"needs {needed} approval{'s' if needed != 1 else ''} from {approvers}"
    )


def _values(
    approval: Approval,
    event: AuditEvent,
    *,
    user: str | None,
    detail: str | None,
    output: str | None,
    at: datetime,
) -> dict[str, Any]:
    # An approval is of the arguments the approver saw: after an edit, those are the edited.
    arguments = approval.edited_arguments or approval.arguments
    return {
        "at": at,
        "event": event,
        "approval_id": approval.id,
        "run_id": approval.run_id,
        "tool": approval.tool_name,
        "user_id": user or SYSTEM_USER,
        "team_id": approval.team_id,
        "enterprise_id": approval.enterprise_id,
        "channel_id": approval.channel_id,
        "thread_ts": approval.thread_ts,
        "rule": rule_of(approval),
        "arguments_sha256": sha256(arguments),
        "output_sha256": sha256(output) if output is not None else None,
        "detail": detail[:500] if detail else None,
    }


# Core, not the ORM's bulk insert: an entry is a row written once and never loaded back here.
# Built once (see storage/statements).
AUDIT: Table = AuditEntry.__table__  # type: ignore[attr-defined]
_INSERT = insert(AUDIT)


async def append(
    session: AsyncSession,
    event: AuditEvent,
    approval: Approval,
    *,
    user: str | None,
    detail: str | None = None,
    output: str | None = None,
) -> None:
    """Add one entry in the caller's transaction; `user` None means nobody acted but the bot.

    `output` is hashed here and never stored: the log proves what a call returned without
    keeping it.
    """
    entry = _values(approval, event, user=user, detail=detail, output=output, at=utcnow())
    await session.execute(_INSERT, [entry])


async def append_requests(session: AsyncSession, approvals: list[Approval]) -> None:
    """The `requested` entries of the calls a pause asks about, in one statement."""
    if not approvals:
        return
    at = utcnow()
    rows = [
        _values(a, AuditEvent.REQUESTED, user=None, detail=asked(a), output=None, at=at)
        for a in approvals
    ]
    await session.execute(_INSERT, rows)


@dataclass(frozen=True)
class Entry:
    """An entry as exported: the field names are the contract, not the columns'."""

    at: datetime
    event: str
    approval_id: str
    run_id: str
    tool: str
    user: str
    team: str
    enterprise: str | None
    channel: str
    thread_ts: str
    rule: str | None
    arguments_sha256: str
    output_sha256: str | None
    detail: str | None

    def as_dict(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for name in FIELDS:
            value = getattr(self, name)
            values[name] = iso(value) if isinstance(value, datetime) else value
        return values


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(row: AuditEntry) -> Entry:
    return Entry(
        at=row.at,
        event=str(row.event),
        approval_id=row.approval_id,
        run_id=row.run_id,
        tool=row.tool,
        user=row.user_id,
        team=row.team_id,
        enterprise=row.enterprise_id,
        channel=row.channel_id,
        thread_ts=row.thread_ts,
        rule=row.rule,
        arguments_sha256=row.arguments_sha256,
        output_sha256=row.output_sha256,
        detail=row.detail,
    )


async def entries(
    db: Database,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    team_id: str | None = None,
    approval_id: str | None = None,
) -> list[Entry]:
    """Entries in the order they were written; with `limit`, the newest `limit` of them."""
    query = select(AuditEntry)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if team_id is not None:
        query = query.where(col(AuditEntry.team_id) == team_id)
    if approval_id is not None:
        query = query.where(col(AuditEntry.approval_id) == approval_id)
    if limit is not None:
        query = query.order_by(col(AuditEntry.id).desc()).limit(limit)
    else:
        query = query.order_by(col(AuditEntry.id))
    async with db.read() as session:
        rows = list(await session.scalars(query))
    if limit is not None:
        rows.reverse()
    return [_entry(row) for row in rows]


async def count(db: Database, *, since: datetime | None = None, team_id: str | None = None) -> int:
    query = select(func.count()).select_from(AuditEntry)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if team_id is not None:
        query = query.where(col(AuditEntry.team_id) == team_id)
    async with db.read() as session:
        return int(await session.scalar(query) or 0)


async def export(db: Database, *, since: datetime | None = None) -> AsyncIterator[Entry]:
    """Every entry from `since` on, oldest first, read in batches by id, each batch its own
    short read: an export of years of entries never holds a transaction open while it
    prints, and entries appended meanwhile are included up to the moment it reaches them."""
    after = 0
    while True:
        query = select(AuditEntry).where(col(AuditEntry.id) > after)
        if since is not None:
            query = query.where(col(AuditEntry.at) >= since)
        query = query.order_by(col(AuditEntry.id)).limit(EXPORT_BATCH)
        async with db.read() as session:
            rows = list(await session.scalars(query))
        for row in rows:
            yield _entry(row)
        if len(rows) < EXPORT_BATCH:
            return
        after = rows[-1].id or after


async def purge_before(db: Database, cutoff: datetime, *, batch_size: int = 10_000) -> int:
    """The log's own retention: entries older than `cutoff` go, in short batches."""
    removed = 0
    while True:
        async with db.write() as session:
            ids = list(
                await session.scalars(
                    select(col(AuditEntry.id))
                    .where(col(AuditEntry.at) < cutoff)
                    .order_by(col(AuditEntry.id))
                    .limit(batch_size)
                )
            )
            if ids:
                await session.execute(delete(AuditEntry).where(col(AuditEntry.id).in_(ids)))
        removed += len(ids)
        if len(ids) < batch_size:
            return removed

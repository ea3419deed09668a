"""The decision log: one row per vote or decision on an approval, for the record.

A row is written in the transaction whose change it records (a vote that counted, a rejection,
an approval, an expiry, an edit of the arguments), so the log never says something happened
that did not, nor misses something that did. Each entry is also appended to the audit log
(storage.audit), which outlives it. The bot never updates a row, and deletes rows
only with their approval (storage.retention). A click that changed nothing (a second approval
by the same person, a click on a call already decided) leaves no row.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import audit
from storage.database import Database
from storage.models import Approval, ApprovalDecision, DecisionKind, utcnow
from storage.statements import insert_unless_taken

# Every vote asks it: built once, bound each time (see storage/statements).
_APPROVERS = (
    select(col(ApprovalDecision.user_id))
    .where(
        col(ApprovalDecision.approval_id) == bindparam("approval_id"),
        col(ApprovalDecision.kind) == DecisionKind.APPROVE,
    )
    .order_by(col(ApprovalDecision.id))
)


async def record(
    session: AsyncSession,
    approval: Approval,
    *,
    kind: DecisionKind,
    user_id: str | None,
    reason: str | None = None,
    detail: str | None = None,
) -> bool:
    """Add one entry; False when it is an approval this person already gave.

    The insert itself asks the unique index (ON CONFLICT DO NOTHING) rather than a read
    before it, so one person counts once on either database even without the caller's locks.
    """
    inserted = await insert_unless_taken(
        session,
        ApprovalDecision,
        [
            {
                "approval_id": approval.id,
                "run_id": approval.run_id,
                "team_id": approval.team_id,
                "user_id": user_id,
                "kind": kind,
                "reason": reason,
                "created_at": utcnow(),
            }
        ],
        key="id",
    )
    if inserted:
        await audit.append(session, audit.FOR_DECISION[kind], approval, user=user_id, detail=detail)
    return bool(inserted)


async def approvers_of(session: AsyncSession, approval_id: str) -> list[str]:
    """Who has approved the call, in the order they did."""
    rows = await session.scalars(_APPROVERS, {"approval_id": approval_id})
    return [user for user in rows if user is not None]


async def approved_by(db: Database, approval_id: str) -> list[str]:
    async with db.read() as session:
        return await approvers_of(session, approval_id)


async def entries(db: Database, approval_id: str) -> list[ApprovalDecision]:
    """Every entry on the call, oldest first: what an audit export reads."""
    async with db.read() as session:
        rows = await session.scalars(
            select(ApprovalDecision)
            .where(col(ApprovalDecision.approval_id) == approval_id)
            .order_by(col(ApprovalDecision.id))
        )
        return list(rows)


@dataclass(frozen=True)
class PastDecision:
    kind: DecisionKind
    at: datetime
    tool_name: str
    channel_id: str
    thread_ts: str


async def recent_by(db: Database, *, team_id: str, user_id: str, limit: int) -> list[PastDecision]:
    """What this person decided lately, newest first, with the call it was about."""
    async with db.read() as session:
        rows = await session.execute(
            select(
                col(ApprovalDecision.kind),
                col(ApprovalDecision.created_at),
                col(Approval.tool_name),
                col(Approval.channel_id),
                col(Approval.thread_ts),
            )
            .join(Approval, col(Approval.id) == col(ApprovalDecision.approval_id))
            .where(
                col(ApprovalDecision.team_id) == team_id,
                col(ApprovalDecision.user_id) == user_id,
            )
            .order_by(col(ApprovalDecision.id).desc())
            .limit(limit)
        )
        return [PastDecision(*row) for row in rows.all()]

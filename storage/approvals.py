"""Approvals: decided once by a compare-and-set, and the ledger of approved calls' starts."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlmodel import col

from storage import outbox
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import (
    Approval,
    ApprovalStatus,
    Job,
    JobKind,
    JobStatus,
    OutboxKind,
    Run,
    RunStatus,
    utcnow,
)
from storage.outbox import Claimant, Owed
from storage.statements import insert_unless_taken, rowcount


async def get_approval(db: Database, approval_id: str) -> Approval | None:
    async with db.read() as session:
        return await session.get(Approval, approval_id)


async def claim_execution(db: Database, *, run_id: str, call_id: str) -> tuple[bool, str | None]:
    """May this approved call start now? Once per call, whatever resumes the run, however often.

    Returns (True, None) to run it, or (False, recorded output or None when the earlier start
    never recorded one). A call with no approval row is not ours to guard: it runs.
    """
    async with db.write() as session:
        result = await session.execute(
            update(Approval)
            .where(
                col(Approval.run_id) == run_id,
                col(Approval.call_id) == call_id,
                col(Approval.status) == ApprovalStatus.APPROVED,
                col(Approval.executed_at).is_(None),
            )
            .values(executed_at=utcnow())
        )
        if rowcount(result) >= 1:
            return True, None
        row = await session.scalar(
            select(Approval)
            .where(col(Approval.run_id) == run_id, col(Approval.call_id) == call_id)
            .order_by(col(Approval.generation).desc())
            .limit(1)
        )
        if row is None or row.status != ApprovalStatus.APPROVED:
            return True, None
        return False, row.outcome


async def record_outcome(db: Database, *, run_id: str, call_id: str, outcome: str) -> None:
    async with db.write() as session:
        await session.execute(
            update(Approval)
            .where(col(Approval.run_id) == run_id, col(Approval.call_id) == call_id)
            .values(outcome=outcome)
        )


@dataclass(frozen=True)
class Decision:
    approval: Approval
    won: bool
    resume_queued: bool


async def decide_approval(
    db: Database,
    *,
    approval_id: str,
    status: ApprovalStatus,
    decided_by: str | None,
    reason: str | None = None,
    by: Claimant | None = None,
) -> Decision | None:
    """Decide a pending approval once; queue the resume when it was the run's last one. The
    card owes the thread its new look, stored with the decision.

    The run row is locked first so that two approvals of one run decided at the same moment
    cannot both see the other still pending and leave the run waiting forever.
    """
    async with db.write() as session:
        approval = await session.get(Approval, approval_id)
        if approval is None:
            return None
        run = await session.get(Run, approval.run_id, with_for_update=True)
        result = await session.execute(
            update(Approval)
            .where(col(Approval.id) == approval_id, col(Approval.status) == ApprovalStatus.PENDING)
            .values(status=status, decided_by=decided_by, decided_at=utcnow(), reason=reason)
        )
        won = rowcount(result) == 1
        await session.refresh(approval)
        if won:
            card = Owed(OutboxKind.CARD, approval_id=approval.id)
            thread_key = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key
            await outbox.add(session, thread_key=thread_key, owed=[card], by=by)
        if not won or run is None or run.status != RunStatus.WAITING:
            return Decision(approval=approval, won=won, resume_queued=False)
        still_pending = await session.scalar(
            select(func.count())
            .select_from(Approval)
            .where(
                col(Approval.run_id) == run.id,
                col(Approval.generation) == run.generation,
                col(Approval.status) == ApprovalStatus.PENDING,
            )
        )
        if still_pending:
            return Decision(approval=approval, won=True, resume_queued=False)
        run.status = RunStatus.RESUMING
        run.updated_at = utcnow()
        await insert_unless_taken(
            session,
            Job,
            [
                {
                    "thread_key": run.thread_key,
                    "kind": JobKind.RESUME,
                    "status": JobStatus.QUEUED,
                    "dedupe_key": f"resume:{run.id}:{run.generation}",
                    "run_id": run.id,
                    "created_at": utcnow(),
                }
            ],
            key="dedupe_key",
        )
        return Decision(approval=approval, won=True, resume_queued=True)


async def due_approval_ids(db: Database, *, now: datetime, limit: int = 100) -> list[str]:
    async with db.read() as session:
        rows = await session.scalars(
            select(col(Approval.id))
            .where(
                and_(
                    col(Approval.status) == ApprovalStatus.PENDING,
                    col(Approval.expires_at) <= now,
                )
            )
            .order_by(col(Approval.expires_at))
            .limit(limit)
        )
        return list(rows)

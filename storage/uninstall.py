"""A workspace (or Enterprise Grid org) that uninstalled the app, or revoked its bot token,
forgotten in one transaction: its tokens deleted, its pending approvals expired with the
reason in the audit log, its runs that waited on them ended, its queued jobs and undelivered
messages given up. Nothing of another workspace is touched: every statement is bounded by the
workspace's threads."""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import select, update
from sqlmodel import col

from storage import decision_log
from storage.database import Database
from storage.installations import installation_key
from storage.models import (
    Approval,
    ApprovalStatus,
    DecisionKind,
    Job,
    JobStatus,
    OutboxMessage,
    OutboxStatus,
    Run,
    RunStatus,
    SlackInstallation,
    Thread,
    utcnow,
)
from storage.statements import rowcount


@dataclass(frozen=True)
class Forgotten:
    installations: int
    approvals: list[Approval]
    jobs: int
    messages: int


async def forget_workspace(
    db: Database, *, team_id: str | None, enterprise_id: str | None, reason: str
) -> Forgotten:
    """`team_id` None: the org-wide install of `enterprise_id`, and every workspace it served
    (the threads that carry that enterprise id)."""
    if not team_id and not enterprise_id:
        return Forgotten(0, [], 0, 0)
    key = installation_key(enterprise_id, team_id, not team_id)
    within = (
        col(Thread.team_id) == team_id if team_id else col(Thread.enterprise_id) == enterprise_id
    )
    threads = select(col(Thread.key)).where(within)
    now = utcnow()
    async with db.write() as session:
        removed = await session.execute(
            sa.delete(SlackInstallation).where(col(SlackInstallation.key) == key)
        )
        pending = list(
            await session.scalars(
                select(Approval)
                .join(Run, col(Run.id) == col(Approval.run_id))
                .where(
                    col(Run.thread_key).in_(threads),
                    col(Approval.status) == ApprovalStatus.PENDING,
                )
                .with_for_update()
            )
        )
        for approval in pending:
            approval.status = ApprovalStatus.EXPIRED
            approval.decided_at = now
            approval.reason = reason
            await decision_log.record(
                session, approval, kind=DecisionKind.EXPIRE, user_id=None, detail=reason
            )
        await session.execute(
            update(Run)
            .where(
                col(Run.thread_key).in_(threads),
                col(Run.status).in_([RunStatus.WAITING, RunStatus.RESUMING]),
            )
            .values(status=RunStatus.FAILED, state=None, updated_at=now)
        )
        jobs = await session.execute(
            update(Job)
            .where(col(Job.thread_key).in_(threads), col(Job.status) == JobStatus.QUEUED)
            .values(status=JobStatus.FAILED, finished_at=now)
        )
        messages = await session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.thread_key).in_(threads),
                col(OutboxMessage.status) == OutboxStatus.PENDING,
            )
            .values(status=OutboxStatus.FAILED, error="app_uninstalled")
        )
        return Forgotten(rowcount(removed), pending, rowcount(jobs), rowcount(messages))

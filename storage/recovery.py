"""Jobs whose process stopped half-way: interrupted once, and retried once on request."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import outbox
from storage.database import Database
from storage.models import (
    Approval,
    ApprovalStatus,
    Job,
    JobKind,
    JobStatus,
    OutboxKind,
    Run,
    RunStatus,
    Thread,
    new_ref,
    utcnow,
)
from storage.outbox import Claimant, Owed
from storage.statements import insert_unless_taken


@dataclass(frozen=True)
class Interrupted:
    """A job whose process stopped, and the run it interrupted (None if it had not begun one);
    the note naming the calls in flight is already owed to the thread."""

    job: Job
    run: Run | None


async def _interrupt(
    session: AsyncSession, job: Job, now: datetime, *, cause: str, by: Claimant
) -> Interrupted:
    """Fail the job and interrupt its run, owing the thread a note with a Retry button; a job
    that had not started a run just goes back."""
    run = await session.get(Run, job.run_id, with_for_update=True) if job.run_id else None
    if run is None or run.status != RunStatus.RUNNING:
        if job.kind == JobKind.MESSAGE and run is None:
            job.status = JobStatus.QUEUED
            job.owner = None
            return Interrupted(job=job, run=None)
        job.status = JobStatus.FAILED
        job.finished_at = now
        return Interrupted(job=job, run=None)
    job.status = JobStatus.FAILED
    job.finished_at = now
    run.status = RunStatus.INTERRUPTED
    run.error_ref = new_ref()
    run.updated_at = now
    in_flight: list[Approval] = []
    if job.kind == JobKind.RESUME:
        rows = await session.scalars(
            select(Approval).where(
                col(Approval.run_id) == run.id,
                col(Approval.generation) == run.generation,
                col(Approval.status) == ApprovalStatus.APPROVED,
                col(Approval.outcome).is_(None),
            )
        )
        in_flight = list(rows)
    note = Owed(
        OutboxKind.INTERRUPTED,
        {
            "run_id": run.id,
            "ref": run.error_ref,
            "cause": cause,
            "resuming": job.kind == JobKind.RESUME,
            "in_flight": [[a.tool_name, a.arguments] for a in in_flight],
        },
    )
    await outbox.add(session, thread_key=run.thread_key, owed=[note], by=by)
    return Interrupted(job=job, run=run)


async def interrupt_job(
    db: Database, *, job_id: int, cause: str, by: Claimant
) -> Interrupted | None:
    """This process is stopping in the middle of the job: record where it stopped."""
    async with db.write() as session:
        job = await session.get(Job, job_id, with_for_update=True)
        if job is None or job.status != JobStatus.RUNNING:
            return None
        return await _interrupt(session, job, utcnow(), cause=cause, by=by)


async def recover_orphaned_jobs(
    db: Database, *, cause: str, by: Claimant, limit: int = 20
) -> list[Interrupted]:
    """Running jobs whose thread lease expired: their process died. Each is taken once.

    The dead owner's lease is cleared with it, so a process that was only slow finds its
    lease gone at the next renewal instead of carrying on as if nothing happened.
    """
    now = utcnow()
    async with db.write() as session:
        rows = (
            await session.execute(
                select(Job, Thread)
                .join(Thread, col(Thread.key) == col(Job.thread_key))
                .where(
                    col(Job.status) == JobStatus.RUNNING,
                    or_(col(Thread.lease_owner).is_(None), col(Thread.lease_expires_at) < now),
                )
                .order_by(col(Job.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        found = []
        for job, thread in rows:
            thread.lease_owner = None
            thread.lease_expires_at = None
            found.append(await _interrupt(session, job, now, cause=cause, by=by))
        return found


class RetryOutcome(StrEnum):
    QUEUED = "queued"
    NOT_INTERRUPTED = "not_interrupted"
    UNKNOWN = "unknown"


async def retry_run(
    db: Database, *, run_id: str, owed: Sequence[Owed] = (), by: Claimant | None = None
) -> tuple[RetryOutcome, Run | None]:
    """Queue an interrupted run again, once: a resume from its stored pause, or its message;
    `owed` (the note that it was retried) goes with it."""
    async with db.write() as session:
        run = await session.get(Run, run_id, with_for_update=True)
        if run is None:
            return RetryOutcome.UNKNOWN, None
        if run.status != RunStatus.INTERRUPTED:
            return RetryOutcome.NOT_INTERRUPTED, run
        now = utcnow()
        if run.state is not None and run.generation > 0:
            run.status = RunStatus.RESUMING
            values: dict[str, Any] = {
                "kind": JobKind.RESUME,
                "run_id": run.id,
                "dedupe_key": f"retry:{run.id}:{uuid.uuid4().hex}",
            }
        else:
            original = await session.scalar(
                select(Job).where(col(Job.run_id) == run.id, col(Job.kind) == JobKind.MESSAGE)
            )
            if original is None:
                return RetryOutcome.UNKNOWN, run
            run.status = RunStatus.RETRIED
            values = {
                "kind": JobKind.MESSAGE,
                "user_id": original.user_id,
                "text": original.text,
                "dedupe_key": f"retry:{run.id}",
            }
        run.updated_at = now
        await insert_unless_taken(
            session,
            Job,
            [
                {
                    "thread_key": run.thread_key,
                    "status": JobStatus.QUEUED,
                    "created_at": now,
                    **values,
                }
            ],
            key="dedupe_key",
        )
        await outbox.add(session, thread_key=run.thread_key, owed=owed, by=by)
        return RetryOutcome.QUEUED, run

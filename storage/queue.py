"""A thread's work queue and the lease that lets one worker at a time drain it.

Work is rows in `jobs`, done in id order by whoever holds the thread's lease. A worker's step
is one transaction: it records the job just finished, holds the lease and starts the next job
(and that job's run)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.database import Database
from storage.models import (
    Job,
    JobKind,
    JobStatus,
    Thread,
    utcnow,
)
from storage.outbox import Claimant, Owed
from storage.runs import BegunResume, BegunRun, begin_resume, begin_run
from storage.statements import rowcount

# A worker's step runs these four statements around every job: built once, with their values
# bound at each execution (building and keying a statement cost as much as running it).
THREADS: Table = Thread.__table__  # type: ignore[attr-defined]
JOBS: Table = Job.__table__  # type: ignore[attr-defined]
_TAKE_LEASE = (
    update(THREADS)
    .where(
        THREADS.c.key == bindparam("thread_key"),
        or_(
            THREADS.c.lease_owner.is_(None),
            THREADS.c.lease_owner == bindparam("owner"),
            THREADS.c.lease_expires_at < bindparam("now"),
        ),
    )
    .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("until"))
)
_RELEASE_LEASE = (
    update(THREADS)
    .where(THREADS.c.key == bindparam("thread_key"), THREADS.c.lease_owner == bindparam("owner"))
    .values(lease_owner=None, lease_expires_at=None)
)
_FINISH_JOB = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"))
    .values(status=bindparam("status"), finished_at=bindparam("at"))
)
_NEXT_QUEUED = (
    select(Job)
    .where(col(Job.thread_key) == bindparam("thread_key"), col(Job.status) == JobStatus.QUEUED)
    .order_by(col(Job.id))
    .limit(1)
)


async def _take_lease(
    session: AsyncSession, *, thread_key: str, owner: str, ttl: timedelta, now: datetime
) -> bool:
    """Hold the thread's lease: free, already ours, or left to expire by a dead owner."""
    result = await session.execute(
        _TAKE_LEASE, {"thread_key": thread_key, "owner": owner, "now": now, "until": now + ttl}
    )
    return rowcount(result) == 1


async def renew_thread_lease(db: Database, *, thread_key: str, owner: str, ttl: timedelta) -> bool:
    async with db.write() as session:
        result = await session.execute(
            update(Thread)
            .where(col(Thread.key) == thread_key, col(Thread.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + ttl)
        )
        return rowcount(result) == 1


async def release_thread_lease(db: Database, *, thread_key: str, owner: str) -> None:
    async with db.write() as session:
        await session.execute(_RELEASE_LEASE, {"thread_key": thread_key, "owner": owner})


async def release_all_leases(db: Database) -> int:
    """For a single-process database at start-up: any lease still held belongs to a dead process."""
    async with db.write() as session:
        result = await session.execute(
            update(Thread)
            .where(col(Thread.lease_owner).is_not(None))
            .values(lease_owner=None, lease_expires_at=None)
        )
        return rowcount(result)


async def _next_job(
    session: AsyncSession,
    *,
    thread_key: str,
    owner: str,
    ttl: timedelta,
    finished: tuple[int, JobStatus] | None,
) -> Job | None:
    now = utcnow()
    if finished is not None:
        await session.execute(
            _FINISH_JOB, {"job_id": finished[0], "status": finished[1], "at": now}
        )
    if not await _take_lease(session, thread_key=thread_key, owner=owner, ttl=ttl, now=now):
        return None
    job = await session.scalar(_NEXT_QUEUED, {"thread_key": thread_key})
    if job is None:
        await session.execute(_RELEASE_LEASE, {"thread_key": thread_key, "owner": owner})
        return None
    job.status = JobStatus.RUNNING
    job.owner = owner
    job.started_at = now
    return job


async def finish_job(db: Database, *, job_id: int, status: JobStatus) -> None:
    async with db.write() as session:
        await session.execute(_FINISH_JOB, {"job_id": job_id, "status": status, "at": utcnow()})


async def requeue_jobs(db: Database, *, job_ids: Sequence[int]) -> None:
    """Hand deferred messages back to the queue when a resume could not take them."""
    if not job_ids:
        return
    async with db.write() as session:
        await session.execute(
            update(Job).where(col(Job.id).in_(job_ids)).values(status=JobStatus.QUEUED, run_id=None)
        )


async def threads_needing_work(db: Database, *, limit: int = 100) -> list[str]:
    """Threads with queued jobs and nobody holding a live lease: lost wake-ups and dead owners."""
    now = utcnow()
    async with db.read() as session:
        rows = await session.scalars(
            select(col(Thread.key))
            .join(Job, col(Job.thread_key) == col(Thread.key))
            .where(
                col(Job.status) == JobStatus.QUEUED,
                or_(col(Thread.lease_owner).is_(None), col(Thread.lease_expires_at) < now),
            )
            .distinct()
            .limit(limit)
        )
        return list(rows)


@dataclass(frozen=True)
class Step:
    """A started job, with what its handler needs from the same transaction."""

    job: Job
    run: BegunRun | None = None  # a message job's run (or the waiting run it was parked on)
    resume: BegunResume | None = None  # a resume job's claimed run; None if already claimed


async def next_step_under_lease(
    db: Database,
    *,
    thread_key: str,
    owner: str,
    ttl: timedelta,
    history_limit: int | None,
    finished: tuple[int, JobStatus] | None = None,
    parked_note: Owed | None = None,
) -> Step | None:
    """One step of a thread's worker, in one transaction: record the job it just finished,
    hold (or take) the thread's lease, start the next queued job and that job's run (a message
    begins a run, a resume claims its paused run); with no job left, let the lease go.

    Releasing in the transaction that found the queue empty is what keeps a job queued by
    another process from waiting unseen: its owner's lease attempt waits on this row lock and
    then finds the lease free.
    """
    async with db.write() as session:
        job = await _next_job(
            session, thread_key=thread_key, owner=owner, ttl=ttl, finished=finished
        )
        if job is None:
            return None
        assert job.id is not None
        if job.kind == JobKind.RESUME:
            if job.run_id is None:
                return Step(job)
            resume = await begin_resume(session, run_id=job.run_id, history_limit=history_limit)
            return Step(job, resume=resume)
        run = await begin_run(
            session,
            job,
            requested_by=job.user_id or "unknown",
            history_limit=history_limit,
            parked_note=parked_note,
            by=Claimant(owner, ttl),
        )
        return Step(job, run=run)

"""Intent-named queries. Every state change is a compare-and-set inside one transaction.

Exactly-once lives here: an approval is decided by `UPDATE … WHERE status = 'pending'`, a run is
handed to a resume job by `UPDATE … WHERE status = 'waiting'`, and a job is started by
`UPDATE … WHERE status = 'queued'`. Whoever changes the row wins; everyone else is told so.
"""

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from storage import history
from storage.database import Database
from storage.models import (
    Approval,
    ApprovalStatus,
    Job,
    JobKind,
    JobStatus,
    Run,
    RunStatus,
    SlackEvent,
    Thread,
    new_ref,
    utcnow,
)


def new_approval_id() -> str:
    """Opaque and unguessable: a button value is attacker-controlled, so ids must not be."""
    return "ap_" + secrets.token_urlsafe(18)


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


# --- events and messages -------------------------------------------------------------------


class Accepted(StrEnum):
    QUEUED = "queued"
    DUPLICATE_EVENT = "duplicate_event"
    DUPLICATE_MESSAGE = "duplicate_message"
    NOT_OUR_THREAD = "not_our_thread"


@dataclass(frozen=True)
class ThreadRef:
    team_id: str
    channel_id: str
    thread_ts: str

    @property
    def key(self) -> str:
        return f"{self.team_id}:{self.channel_id}:{self.thread_ts}"

    @classmethod
    def from_key(cls, key: str) -> "ThreadRef":
        team_id, channel_id, thread_ts = key.split(":", 2)
        return cls(team_id, channel_id, thread_ts)


@dataclass(frozen=True)
class IncomingRow:
    event_id: str
    thread: ThreadRef
    user_id: str
    message_ts: str
    text: str
    only_known_thread: bool


async def accept_message(
    db: Database,
    *,
    event_id: str,
    thread: ThreadRef,
    user_id: str,
    message_ts: str,
    text: str,
    only_known_thread: bool,
) -> Accepted:
    """Durably queue a message for its thread, once, however often Slack delivers it."""
    row = IncomingRow(event_id, thread, user_id, message_ts, text, only_known_thread)
    [accepted] = await accept_messages(db, [row])
    return accepted


async def accept_messages(db: Database, rows: Sequence[IncomingRow]) -> list[Accepted]:
    """Queue several messages in one transaction of three or four statements, whatever their
    number.

    The event id catches Slack's retries; the message's own ts catches the second event Slack
    sends for a message that mentions the bot (`app_mention` and `message`). Rows keep their
    order, so jobs of one thread are numbered in the order the messages came.
    """
    if not rows:
        return []
    now = utcnow()
    results: list[Accepted | None] = [None] * len(rows)
    async with db.write(urgent=True) as session:
        first_of_event: dict[str, int] = {}
        for index, row in enumerate(rows):
            if row.event_id in first_of_event:
                results[index] = Accepted.DUPLICATE_EVENT
            else:
                first_of_event[row.event_id] = index
        new_events = await _insert_returning(
            session,
            SlackEvent,
            [{"event_id": e, "received_at": now} for e in first_of_event],
            key="event_id",
        )
        live: list[int] = []
        for event_id, index in first_of_event.items():
            if event_id in new_events:
                live.append(index)
            else:
                results[index] = Accepted.DUPLICATE_EVENT
        # Only messages that are not addressed to the bot need to know which threads exist.
        keys = {rows[i].thread.key for i in live if rows[i].only_known_thread}
        known: set[str] = set()
        if keys:
            found = await session.scalars(select(col(Thread.key)).where(col(Thread.key).in_(keys)))
            known = set(found)
        wanted: list[int] = []
        for index in live:
            if rows[index].only_known_thread and rows[index].thread.key not in known:
                results[index] = Accepted.NOT_OUR_THREAD
            else:
                wanted.append(index)
        new_threads = {rows[i].thread.key: rows[i].thread for i in wanted}
        await _insert_returning(
            session,
            Thread,
            [
                {
                    "key": t.key,
                    "team_id": t.team_id,
                    "channel_id": t.channel_id,
                    "thread_ts": t.thread_ts,
                    "created_at": now,
                }
                for key, t in new_threads.items()
                if key not in known
            ],
            key="key",
        )
        first_of_message: dict[str, int] = {}
        for index in wanted:
            thread = rows[index].thread
            dedupe = f"msg:{thread.team_id}:{thread.channel_id}:{rows[index].message_ts}"
            if dedupe in first_of_message:
                results[index] = Accepted.DUPLICATE_MESSAGE
            else:
                first_of_message[dedupe] = index
        queued = await _insert_returning(
            session,
            Job,
            [
                {
                    "thread_key": rows[index].thread.key,
                    "kind": JobKind.MESSAGE,
                    "status": JobStatus.QUEUED,
                    "dedupe_key": dedupe,
                    "user_id": rows[index].user_id,
                    "message_ts": rows[index].message_ts,
                    "text": rows[index].text,
                    "created_at": now,
                }
                for dedupe, index in first_of_message.items()
            ],
            key="dedupe_key",
        )
        for dedupe, index in first_of_message.items():
            results[index] = Accepted.QUEUED if dedupe in queued else Accepted.DUPLICATE_MESSAGE
    return [r if r is not None else Accepted.DUPLICATE_EVENT for r in results]


async def _insert_returning(
    session: AsyncSession, model: type[SQLModel], values: list[dict[str, Any]], *, key: str
) -> set[str]:
    """Insert rows unless their unique key is taken; returns the keys this call inserted."""
    if not values:
        return set()
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).values(values).on_conflict_do_nothing().returning(table.c[key])
    return set((await session.scalars(stmt)).all())


# --- the thread lease and its job queue ----------------------------------------------------


async def _take_lease(
    session: AsyncSession, *, thread_key: str, owner: str, ttl: timedelta, now: datetime
) -> bool:
    """Hold the thread's lease: free, already ours, or left to expire by a dead owner."""
    result = await session.execute(
        update(Thread)
        .where(
            col(Thread.key) == thread_key,
            or_(
                col(Thread.lease_owner).is_(None),
                col(Thread.lease_owner) == owner,
                col(Thread.lease_expires_at) < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + ttl)
    )
    return _rowcount(result) == 1


async def acquire_thread_lease(
    db: Database, *, thread_key: str, owner: str, ttl: timedelta
) -> bool:
    async with db.write() as session:
        return await _take_lease(session, thread_key=thread_key, owner=owner, ttl=ttl, now=utcnow())


async def renew_thread_lease(db: Database, *, thread_key: str, owner: str, ttl: timedelta) -> bool:
    async with db.write() as session:
        result = await session.execute(
            update(Thread)
            .where(col(Thread.key) == thread_key, col(Thread.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + ttl)
        )
        return _rowcount(result) == 1


async def release_thread_lease(db: Database, *, thread_key: str, owner: str) -> None:
    async with db.write() as session:
        await session.execute(
            update(Thread)
            .where(col(Thread.key) == thread_key, col(Thread.lease_owner) == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


async def release_all_leases(db: Database) -> int:
    """For a single-process database at start-up: any lease still held belongs to a dead process."""
    async with db.write() as session:
        result = await session.execute(
            update(Thread)
            .where(col(Thread.lease_owner).is_not(None))
            .values(lease_owner=None, lease_expires_at=None)
        )
        return _rowcount(result)


async def next_job_under_lease(
    db: Database,
    *,
    thread_key: str,
    owner: str,
    ttl: timedelta,
    finished: tuple[int, JobStatus] | None = None,
) -> Job | None:
    """One step of a thread's worker, in one transaction: record the job it just finished,
    hold (or take) the thread's lease, and start the next queued job; with none left, let the
    lease go.

    Releasing in the transaction that found the queue empty is what keeps a job queued by
    another process from waiting unseen: its owner's lease attempt waits on this row lock and
    then finds the lease free.
    """
    async with db.write() as session:
        return await _next_job(
            session, thread_key=thread_key, owner=owner, ttl=ttl, finished=finished
        )


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
            update(Job)
            .where(col(Job.id) == finished[0])
            .values(status=finished[1], finished_at=now)
        )
    if not await _take_lease(session, thread_key=thread_key, owner=owner, ttl=ttl, now=now):
        return None
    job = await session.scalar(
        select(Job)
        .where(col(Job.thread_key) == thread_key, col(Job.status) == JobStatus.QUEUED)
        .order_by(col(Job.id))
        .limit(1)
    )
    if job is None:
        await session.execute(
            update(Thread)
            .where(col(Thread.key) == thread_key, col(Thread.lease_owner) == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )
        return None
    job.status = JobStatus.RUNNING
    job.owner = owner
    job.started_at = now
    return job


async def finish_job(db: Database, *, job_id: int, status: JobStatus) -> None:
    async with db.write() as session:
        await session.execute(
            update(Job).where(col(Job.id) == job_id).values(status=status, finished_at=utcnow())
        )


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


# --- runs ----------------------------------------------------------------------------------


async def get_run(db: Database, run_id: str) -> Run | None:
    async with db.read() as session:
        return await session.get(Run, run_id)


@dataclass(frozen=True)
class BegunRun:
    run: Run
    parked: bool  # the message waits on a run that waits for approval
    history: list[str]  # the thread's newest items, oldest first, for a run that starts


async def begin_run(
    db: Database,
    *,
    thread_key: str,
    job_id: int,
    requested_by: str,
    history_limit: int | None = 0,
) -> BegunRun:
    """Start a run for a message, or park the message on the run that waits for approval.

    A starting run gets the thread's newest `history_limit` items (all for None) from the same
    transaction, so the agent reads its history without a round trip of its own.
    """
    async with db.write() as session:
        job = await session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        return await _begin_run(
            session, job, requested_by=requested_by, history_limit=history_limit
        )


async def _begin_run(
    session: AsyncSession, job: Job, *, requested_by: str, history_limit: int | None
) -> BegunRun:
    """Changes `job` in place, so that one UPDATE carries all of the step's changes to it."""
    with session.no_autoflush:
        waiting = await session.scalar(
            select(Run)
            .where(
                col(Run.thread_key) == job.thread_key,
                col(Run.status).in_([RunStatus.WAITING, RunStatus.RESUMING]),
            )
            .order_by(col(Run.created_at).desc())
            .limit(1)
        )
    if waiting is not None:
        job.status = JobStatus.DEFERRED
        job.run_id = waiting.id
        return BegunRun(waiting, parked=True, history=[])
    run = Run(id=new_run_id(), thread_key=job.thread_key, requested_by=requested_by)
    session.add(run)
    job.run_id = run.id
    items = await _history(session, job.thread_key, history_limit)
    return BegunRun(run, parked=False, history=items)


async def _history(session: AsyncSession, thread_key: str, limit: int | None) -> list[str]:
    if limit is not None and limit <= 0:
        return []
    return await history.newest(session, thread_key=thread_key, limit=limit)


@dataclass(frozen=True)
class BegunResume:
    run: Run
    approvals: list[Approval]  # the decisions of the run's current pause
    deferred: list[Job]  # messages that arrived while the run waited
    history: list[str]  # the thread's newest items, oldest first


async def begin_resume(
    db: Database, *, run_id: str, history_limit: int | None = 0
) -> BegunResume | None:
    """Claim the run for its resume job, with the decisions, the parked messages and the
    thread's newest `history_limit` items (all for None), at once.

    Exactly one resume job gets the run; any other (a duplicate, a stale retry) gets None.
    """
    async with db.write() as session:
        return await _begin_resume(session, run_id=run_id, history_limit=history_limit)


async def _begin_resume(
    session: AsyncSession, *, run_id: str, history_limit: int | None
) -> BegunResume | None:
    result = await session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.status) == RunStatus.RESUMING)
        .values(status=RunStatus.RUNNING, updated_at=utcnow())
    )
    if _rowcount(result) != 1:
        return None
    run = await session.get(Run, run_id, populate_existing=True)
    if run is None:
        return None
    approvals = await session.scalars(
        select(Approval)
        .where(col(Approval.run_id) == run.id, col(Approval.generation) == run.generation)
        .order_by(col(Approval.created_at), col(Approval.id))
    )
    deferred = await session.scalars(
        select(Job)
        .where(col(Job.run_id) == run.id, col(Job.status) == JobStatus.DEFERRED)
        .order_by(col(Job.id))
    )
    return BegunResume(
        run,
        list(approvals),
        list(deferred),
        await _history(session, run.thread_key, history_limit),
    )


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
) -> Step | None:
    """`next_job_under_lease`, and in the same transaction the start of the job's run: a
    message begins a run (`begin_run`), a resume claims its run (`begin_resume`)."""
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
            resume = await _begin_resume(session, run_id=job.run_id, history_limit=history_limit)
            return Step(job, resume=resume)
        run = await _begin_run(
            session, job, requested_by=job.user_id or "unknown", history_limit=history_limit
        )
        return Step(job, run=run)


@dataclass(frozen=True)
class NewApproval:
    call_id: str
    tool_name: str
    arguments: str
    approvers: list[str]


@dataclass(frozen=True)
class SavedState:
    state: str
    sdk_version: str
    schema_version: str


async def pause_run(
    db: Database,
    *,
    run_id: str,
    saved: SavedState,
    approvals: Sequence[NewApproval],
    thread: ThreadRef,
    requested_by: str,
    expire_after: timedelta,
    new_history: Sequence[str] = (),
) -> list[Approval]:
    """Store the state, its approvals and the thread's new history items together, replacing
    any older snapshot of the run."""
    now = utcnow()
    async with db.write() as session:
        run = await session.get(Run, run_id, with_for_update=True)
        if run is None or run.status != RunStatus.RUNNING:
            raise LookupError(f"run {run_id} is not running")
        run.generation += 1
        run.status = RunStatus.WAITING
        run.state = saved.state
        run.sdk_version = saved.sdk_version
        run.state_schema_version = saved.schema_version
        run.updated_at = now
        rows = [
            Approval(
                id=new_approval_id(),
                run_id=run_id,
                generation=run.generation,
                team_id=thread.team_id,
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                call_id=item.call_id,
                tool_name=item.tool_name,
                arguments=item.arguments,
                requested_by=requested_by,
                approvers=item.approvers,
                expires_at=now + expire_after,
                created_at=now,
            )
            for item in approvals
        ]
        session.add_all(rows)
        await history.append(session, thread_key=run.thread_key, items=new_history)
        return rows


async def finish_run(
    db: Database,
    *,
    run_id: str,
    status: RunStatus,
    error_ref: str | None = None,
    new_history: Sequence[str] = (),
) -> bool:
    """End a running run, with the thread's new history items. A completed run drops its
    state; a failed one keeps it.

    Only a running run ends here: one that recovery already marked interrupted stays so, and
    its items are not kept, as its retry will produce them again.
    """
    values: dict[str, Any] = {"status": status, "error_ref": error_ref, "updated_at": utcnow()}
    if status == RunStatus.COMPLETED:
        values["state"] = None
    async with db.write() as session:
        thread_key = await session.scalar(
            update(Run)
            .where(col(Run.id) == run_id, col(Run.status) == RunStatus.RUNNING)
            .values(**values)
            .returning(col(Run.thread_key))
        )
        if thread_key is None:
            return False
        await history.append(session, thread_key=thread_key, items=new_history)
        return True


# --- approvals -----------------------------------------------------------------------------


async def get_approval(db: Database, approval_id: str) -> Approval | None:
    async with db.read() as session:
        return await session.get(Approval, approval_id)


async def approvals_of_run(db: Database, *, run_id: str, generation: int) -> list[Approval]:
    async with db.read() as session:
        rows = await session.scalars(
            select(Approval)
            .where(col(Approval.run_id) == run_id, col(Approval.generation) == generation)
            .order_by(col(Approval.created_at), col(Approval.id))
        )
        return list(rows)


async def set_approval_message(db: Database, *, approval_id: str, message_ts: str) -> None:
    async with db.write() as session:
        await session.execute(
            update(Approval).where(col(Approval.id) == approval_id).values(message_ts=message_ts)
        )


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
        if _rowcount(result) >= 1:
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
) -> Decision | None:
    """Decide a pending approval once; queue the resume when it was the run's last one.

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
        won = _rowcount(result) == 1
        await session.refresh(approval)
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
        await _insert_returning(
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


# --- interruptions: a process stopped in the middle of a job ------------------------------


@dataclass(frozen=True)
class Interrupted:
    """A job whose process stopped: what it was doing and which approved calls were in flight."""

    job: Job
    run: Run | None
    in_flight: list[Approval]


async def _interrupt(session: AsyncSession, job: Job, now: datetime) -> Interrupted:
    """Fail the job and interrupt its run; a job that had not started a run just goes back."""
    run = await session.get(Run, job.run_id, with_for_update=True) if job.run_id else None
    if run is None or run.status != RunStatus.RUNNING:
        if job.kind == JobKind.MESSAGE and run is None:
            job.status = JobStatus.QUEUED
            job.owner = None
            return Interrupted(job=job, run=None, in_flight=[])
        job.status = JobStatus.FAILED
        job.finished_at = now
        return Interrupted(job=job, run=None, in_flight=[])
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
    return Interrupted(job=job, run=run, in_flight=in_flight)


async def interrupt_job(db: Database, *, job_id: int) -> Interrupted | None:
    """This process is stopping in the middle of the job: record where it stopped."""
    async with db.write() as session:
        job = await session.get(Job, job_id, with_for_update=True)
        if job is None or job.status != JobStatus.RUNNING:
            return None
        return await _interrupt(session, job, utcnow())


async def recover_orphaned_jobs(db: Database, *, limit: int = 20) -> list[Interrupted]:
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
            found.append(await _interrupt(session, job, now))
        return found


class RetryOutcome(StrEnum):
    QUEUED = "queued"
    NOT_INTERRUPTED = "not_interrupted"
    UNKNOWN = "unknown"


async def retry_run(db: Database, *, run_id: str) -> tuple[RetryOutcome, Run | None]:
    """Queue an interrupted run again, once: a resume from its stored pause, or its message."""
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
        await _insert_returning(
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
        return RetryOutcome.QUEUED, run


async def check_stored_data_opens(db: Database) -> None:
    """Fail at start-up, not at someone's click, when the configured keys cannot read the data.

    Reads the newest value of each sealed column; raises DecryptionError if one will not open.
    """
    newest: list[Any] = [
        select(col(Run.state))
        .where(col(Run.state).is_not(None))
        .order_by(col(Run.updated_at).desc()),
        select(col(Approval.arguments)).order_by(col(Approval.created_at).desc()),
        select(col(Job.text)).where(col(Job.text).is_not(None)).order_by(col(Job.id).desc()),
    ]
    async with db.read() as session:
        for query in newest:
            await session.scalar(query.limit(1))

"""Deleting what is old and finished, and never what a run, a click or a queue still needs.

Every batch is its own short write transaction: on SQLite the bot's writers wait on one lock,
so one long purge would stall every thread; on PostgreSQL long deletes hold row locks and bloat.

What must survive, and why:
- runs that are running, waiting or resuming, with their approvals and jobs: a click or a
  resume job will load them;
- pending approvals: someone may still click (the expiry sweep decides them first);
- queued, running and deferred jobs: they are the work queue;
- approvals and jobs of an interrupted run while the run stays: a retry resumes from the stored
  pause, and deleting its approvals would lose the decisions and the record of which approved
  calls already started (a call without a row would run again).

The decision log (who approved, rejected or let a call expire) goes with its approval, never
before it: while a call can still be decided its votes are what count toward its quorum.

A thread approval goes once it has ended (its time ran out, or someone revoked it) before the
cutoff, like the thread's other decided data: an ended one never lets a call through again.

Feedback on answers goes by when it was given, not with its run: an opinion is its own record
(see storage.feedback), and nothing live ever depends on one.

Rows that could become live again while we delete them (an interrupted run being retried, a
thread getting a message, a conversation getting a turn) are locked first with `FOR UPDATE SKIP
LOCKED` on PostgreSQL, so the other side either waits for the purge or is skipped by it. SQLite
has one writer at a time and needs no lock.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    ColumnElement,
    DateTime,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.database import Database
from storage.history import agent_messages, agent_sessions
from storage.models import (
    Approval,
    ApprovalDecision,
    ApprovalStatus,
    Feedback,
    Job,
    JobStatus,
    Run,
    RunStatus,
    SlackEvent,
    Thread,
    ThreadApproval,
    utcnow,
)
from storage.thread_approvals import ended_before

MAX_BATCH_SIZE = 10_000
# Slack retries an event within minutes: a few days of event ids catch every retry, and the
# table stays small even when `[storage] retain_days` keeps everything else.
EVENT_IDS_KEPT = timedelta(days=3)

LIVE_RUNS = (RunStatus.RUNNING, RunStatus.WAITING, RunStatus.RESUMING)
# Done with: nothing moves a run out of these, except a retry out of INTERRUPTED.
FINISHED_RUNS = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.RETRIED)
SETTLED_RUNS = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.RETRIED)
ACTIVE_JOBS = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEFERRED)
FINISHED_JOBS = (JobStatus.DONE, JobStatus.FAILED)


@dataclass
class PurgeCounts:
    runs: int = 0
    approvals: int = 0
    approval_decisions: int = 0
    jobs: int = 0
    slack_events: int = 0
    threads: int = 0
    agent_sessions: int = 0
    agent_messages: int = 0
    feedback: int = 0
    thread_approvals: int = 0

    def __add__(self, other: "PurgeCounts") -> "PurgeCounts":
        return PurgeCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


async def purge(
    db: Database,
    *,
    older_than: datetime,
    purge_history: bool,
    batch_size: int = 500,
) -> PurgeCounts:
    """Delete finished runs, decided approvals, finished jobs, seen event ids and feedback
    older than `older_than`; with `purge_history`, idle conversations too, and then threads
    left empty.

    Threads are forgotten only once their conversation is gone: the thread row is what lets the
    bot follow replies without a new mention, which would be odd for a thread it still
    remembers.
    """
    if older_than.tzinfo is None:
        raise ValueError("older_than must be an aware datetime")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    cutoff = older_than.astimezone(UTC)
    purger = _Purger(db, cutoff=cutoff, batch_size=batch_size)
    counts = await purger.repeat(purger.runs_batch)
    counts += await purger.repeat(purger.approvals_batch)
    counts += await purger.repeat(purger.jobs_batch)
    counts += await purger.repeat(purger.slack_events_batch)
    counts += await purger.repeat(purger.feedback_batch)
    counts += await purger.repeat(purger.thread_approvals_batch)
    if purge_history:
        counts += await purger.repeat(purger.history_batch)
    counts += await purger.repeat(purger.threads_batch)
    return counts


async def purge_event_ids(
    db: Database, *, older_than: datetime, batch_size: int = 500
) -> PurgeCounts:
    """Delete the processed-event records (Slack event ids) received before `older_than`."""
    if older_than.tzinfo is None:
        raise ValueError("older_than must be an aware datetime")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    purger = _Purger(db, cutoff=older_than.astimezone(UTC), batch_size=batch_size)
    return await purger.repeat(purger.slack_events_batch)


_Batch = Callable[[AsyncSession], Awaitable[tuple[int, PurgeCounts]]]


class _Purger:
    def __init__(self, db: Database, *, cutoff: datetime, batch_size: int) -> None:
        self.db = db
        self.cutoff = cutoff
        self.batch_size = batch_size

    async def repeat(self, batch: _Batch) -> PurgeCounts:
        """Run `batch` in fresh transactions until one deletes less than a full batch.

        Stopping on a short batch (not only an empty one) also ends the loop when a concurrent
        change made the final delete skip rows that the select had found.
        """
        total = PurgeCounts()
        while True:
            async with self.db.write() as session:
                deleted, counts = await batch(session)
            total += counts
            if deleted < self.batch_size:
                return total

    async def runs_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        pending_approval = exists().where(
            col(Approval.run_id) == col(Run.id), col(Approval.status) == ApprovalStatus.PENDING
        )
        active_job = exists().where(
            col(Job.run_id) == col(Run.id), col(Job.status).in_(ACTIVE_JOBS)
        )
        ids = list(
            await session.scalars(
                select(col(Run.id))
                .where(
                    col(Run.status).in_(FINISHED_RUNS),
                    col(Run.updated_at) < self.cutoff,
                    ~pending_approval,
                    ~active_job,
                )
                .order_by(col(Run.id))
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return 0, PurgeCounts()
        # The runs are locked: nothing can retry them, decide their approvals or queue for them.
        of_runs = select(col(Approval.id)).where(col(Approval.run_id).in_(ids))
        decisions = await session.execute(
            delete(ApprovalDecision).where(col(ApprovalDecision.approval_id).in_(of_runs))
        )
        approvals = await session.execute(delete(Approval).where(col(Approval.run_id).in_(ids)))
        jobs = await session.execute(
            delete(Job).where(col(Job.run_id).in_(ids), col(Job.status).in_(FINISHED_JOBS))
        )
        runs = await session.execute(
            delete(Run).where(col(Run.id).in_(ids), col(Run.status).in_(FINISHED_RUNS))
        )
        deleted = _rowcount(runs)
        return deleted, PurgeCounts(
            runs=deleted,
            approvals=_rowcount(approvals),
            approval_decisions=_rowcount(decisions),
            jobs=_rowcount(jobs),
        )

    async def approvals_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        """Decided approvals of runs that stay (finished recently, or after an older pause),
        with their entries in the decision log: a settled run's decided approval never
        changes again, so the ids read first are still the ones to delete."""
        ids = list(
            await session.scalars(
                select(col(Approval.id))
                .join(Run, col(Run.id) == col(Approval.run_id))
                .where(
                    col(Approval.status) != ApprovalStatus.PENDING,
                    col(Approval.decided_at) < self.cutoff,
                    col(Run.status).in_(SETTLED_RUNS),
                )
                .order_by(col(Approval.id))
                .limit(self.batch_size)
            )
        )
        if not ids:
            return 0, PurgeCounts()
        decisions = await session.execute(
            delete(ApprovalDecision).where(col(ApprovalDecision.approval_id).in_(ids))
        )
        result = await session.execute(delete(Approval).where(col(Approval.id).in_(ids)))
        deleted = _rowcount(result)
        return deleted, PurgeCounts(approvals=deleted, approval_decisions=_rowcount(decisions))

    async def jobs_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        """Finished jobs, except those of a run that may still be retried or resumed."""
        run_not_settled = exists().where(
            col(Run.id) == col(Job.run_id), col(Run.status).not_in(SETTLED_RUNS)
        )
        oldest = (
            select(col(Job.id))
            .where(
                col(Job.status).in_(FINISHED_JOBS),
                col(Job.finished_at) < self.cutoff,
                or_(col(Job.run_id).is_(None), ~run_not_settled),
            )
            .limit(self.batch_size)
            .correlate(None)
        )
        result = await session.execute(delete(Job).where(col(Job.id).in_(oldest)))
        deleted = _rowcount(result)
        return deleted, PurgeCounts(jobs=deleted)

    async def slack_events_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        oldest = (
            select(col(SlackEvent.event_id))
            .where(col(SlackEvent.received_at) < self.cutoff)
            .limit(self.batch_size)
            .correlate(None)
        )
        result = await session.execute(
            delete(SlackEvent).where(col(SlackEvent.event_id).in_(oldest))
        )
        deleted = _rowcount(result)
        return deleted, PurgeCounts(slack_events=deleted)

    async def feedback_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        oldest = (
            select(col(Feedback.id))
            .where(col(Feedback.created_at) < self.cutoff)
            .limit(self.batch_size)
            .correlate(None)
        )
        result = await session.execute(delete(Feedback).where(col(Feedback.id).in_(oldest)))
        deleted = _rowcount(result)
        return deleted, PurgeCounts(feedback=deleted)

    async def thread_approvals_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        ids = await ended_before(session, self.cutoff, self.batch_size)
        if not ids:
            return 0, PurgeCounts()
        result = await session.execute(
            delete(ThreadApproval).where(col(ThreadApproval.id).in_(ids))
        )
        deleted = _rowcount(result)
        return deleted, PurgeCounts(thread_approvals=deleted)

    async def history_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        """Idle conversations of threads with nothing in flight, each deleted whole.

        A thread's next append upserts the session row, so it waits for this lock and then
        starts a fresh conversation rather than adding to one being deleted.
        """
        sid = agent_sessions.c.session_id
        in_flight_run = exists().where(col(Run.thread_key) == sid, col(Run.status).in_(LIVE_RUNS))
        in_flight_job = exists().where(col(Job.thread_key) == sid, col(Job.status).in_(ACTIVE_JOBS))
        ids = list(
            await session.scalars(
                select(sid)
                .where(
                    agent_sessions.c.updated_at < self._naive_cutoff(session),
                    ~in_flight_run,
                    ~in_flight_job,
                )
                .order_by(sid)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return 0, PurgeCounts()
        messages = await session.execute(
            delete(agent_messages).where(agent_messages.c.session_id.in_(ids))
        )
        sessions = await session.execute(delete(agent_sessions).where(sid.in_(ids)))
        deleted = _rowcount(sessions)
        return deleted, PurgeCounts(agent_sessions=deleted, agent_messages=_rowcount(messages))

    async def threads_batch(self, session: AsyncSession) -> tuple[int, PurgeCounts]:
        now = utcnow()
        empty = (
            col(Thread.created_at) < self.cutoff,
            or_(col(Thread.lease_owner).is_(None), col(Thread.lease_expires_at) < now),
            ~exists().where(col(Run.thread_key) == col(Thread.key)),
            ~exists().where(col(Job.thread_key) == col(Thread.key)),
            ~exists().where(agent_sessions.c.session_id == col(Thread.key)),
        )
        keys = list(
            await session.scalars(
                select(col(Thread.key))
                .where(*empty)
                .order_by(col(Thread.key))
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not keys:
            return 0, PurgeCounts()
        # Checked again after the lock: a job or run may have arrived just before it.
        result = await session.execute(delete(Thread).where(col(Thread.key).in_(keys), *empty))
        deleted = _rowcount(result)
        return deleted, PurgeCounts(threads=deleted)

    def _naive_cutoff(self, session: AsyncSession) -> ColumnElement[Any]:
        """The cutoff as the SDK's naive timestamps hold it.

        SQLite's CURRENT_TIMESTAMP is UTC. PostgreSQL's, stored in a column without a zone, is
        wall-clock time in the session's TimeZone, so the conversion happens there too.
        """
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            aware = bindparam("history_cutoff", self.cutoff, type_=DateTime(timezone=True))
            return func.timezone(func.current_setting("TimeZone"), aware)
        naive = self.cutoff.replace(tzinfo=None)
        return bindparam("history_cutoff", naive, type_=TIMESTAMP())


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0

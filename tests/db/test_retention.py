"""Retention on both databases: old finished things go, anything live, pending or recent stays."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from agents.extensions.memory import SQLAlchemySession
from agents.items import TResponseInputItem
from sqlalchemy import ColumnElement, FromClause, func, select, update
from sqlalchemy.orm import Mapped
from sqlmodel import SQLModel, col

from storage import audit
from storage.approvals import decide_approval
from storage.database import Database
from storage.history import agent_messages, agent_sessions
from storage.ids import ThreadRef
from storage.messages import Accepted
from storage.models import (
    Approval,
    ApprovalDecision,
    ApprovalStatus,
    Job,
    JobStatus,
    Run,
    RunStatus,
    SlackEvent,
    Thread,
    utcnow,
)
from storage.outbox import Claimant
from storage.queue import Step, finish_job, release_thread_lease
from storage.recovery import interrupt_job
from storage.retention import PurgeCounts, purge
from storage.runs import NewApproval, SavedState, finish_run, pause_run
from tests.storage_steps import accept, next_step

DAY = timedelta(days=1)


def _thread(name: str) -> ThreadRef:
    return ThreadRef("T1", "C1", name)


@dataclass
class Seen:
    """What a scenario built, by what a purge should do with it."""

    runs: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)


class Builder:
    """Builds data with the repository functions the bot uses, then ages it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.old = utcnow() - 40 * DAY
        self.cutoff = utcnow() - 30 * DAY
        self.events = 0

    async def message(self, thread: ThreadRef, ts: str) -> str:
        self.events += 1
        event_id = f"Ev{self.events}"
        accepted = await accept(
            self.db,
            event_id=event_id,
            thread=thread,
            user_id="U1",
            message_ts=ts,
            text="please delete customer 42",
            only_known_thread=False,
        )
        assert accepted == Accepted.QUEUED
        return event_id

    async def step(self, thread: ThreadRef) -> Step:
        """Start the thread's next job and its run; leases are tested on their own, so none
        is kept."""
        step = await next_step(
            self.db, thread_key=thread.key, owner="worker", ttl=timedelta(seconds=30)
        )
        assert step is not None
        assert step.job.id is not None
        await release_thread_lease(self.db, thread_key=thread.key, owner="worker")
        return step

    async def finish_without_run(self, thread: ThreadRef) -> int:
        """A job that ended before a run of its own began (a parked message, say)."""
        async with self.db.write() as session:
            job = (
                await session.scalars(select(Job).where(col(Job.thread_key) == thread.key))
            ).one()
            job.status, job.finished_at = JobStatus.DONE, utcnow()
            assert job.id is not None
            return job.id

    async def run_for_message(self, thread: ThreadRef, ts: str) -> tuple[Job, Run]:
        await self.message(thread, ts)
        step = await self.step(thread)
        assert step.run is not None
        assert not step.run.parked
        return step.job, step.run.run

    async def pause(self, thread: ThreadRef, run_id: str, calls: int = 1) -> list[Approval]:
        return (
            await pause_run(
                self.db,
                by=Claimant("test"),
                run_id=run_id,
                saved=SavedState(state="{}", sdk_version="x", schema_version="1.21"),
                approvals=[
                    NewApproval(
                        call_id=f"call_{i}", tool_name="delete", arguments="{}", approvers=["U9"]
                    )
                    for i in range(calls)
                ],
                thread=thread,
                requested_by="U1",
                expire_after=timedelta(hours=1),
            )
        ).approvals

    async def decide_all(self, approvals: list[Approval]) -> None:
        for approval in approvals:
            decision = await decide_approval(
                self.db,
                by=Claimant("test"),
                approval_id=approval.id,
                status=ApprovalStatus.APPROVED,
                decided_by="U9",
            )
            assert decision is not None
            assert decision.won

    async def finish(self, job: Job, status: JobStatus = JobStatus.DONE) -> None:
        assert job.id is not None
        await finish_job(self.db, job_id=job.id, status=status)

    async def completed_after_approval(self, thread: ThreadRef, ts: str, seen: Seen) -> None:
        """message → run → pause → approve → resume → completed, every job done."""
        job, run = await self.run_for_message(thread, ts)
        approvals = await self.pause(thread, run.id, calls=2)
        await self.finish(job)
        await self.decide_all(approvals)
        step = await self.step(thread)
        assert step.resume is not None
        resume = step.job
        assert await finish_run(self.db, run_id=run.id, status=RunStatus.COMPLETED) is not None
        await self.finish(resume)
        seen.runs[ts] = run.id
        for index, approval in enumerate(approvals):
            seen.approvals[f"{ts}/{index}"] = approval.id
        assert job.id is not None
        assert resume.id is not None
        seen.jobs[ts] = job.id
        seen.jobs[f"{ts}/resume"] = resume.id

    async def age_thread(self, thread: ThreadRef, *, runs: bool = True) -> None:
        """Everything the thread holds happened long ago."""
        async with self.db.write() as session:
            await session.execute(
                update(Thread).where(col(Thread.key) == thread.key).values(created_at=self.old)
            )
            await session.execute(
                update(Job)
                .where(col(Job.thread_key) == thread.key, col(Job.finished_at).is_not(None))
                .values(finished_at=self.old)
            )
            if not runs:
                return
            run_ids = select(col(Run.id)).where(col(Run.thread_key) == thread.key)
            await session.execute(
                update(Run).where(col(Run.thread_key) == thread.key).values(updated_at=self.old)
            )
            await session.execute(
                update(Approval)
                .where(col(Approval.run_id).in_(run_ids), col(Approval.decided_at).is_not(None))
                .values(decided_at=self.old)
            )

    async def age_events(self) -> None:
        async with self.db.write() as session:
            await session.execute(update(SlackEvent).values(received_at=self.old))

    async def history(self, thread: ThreadRef, *, old: bool) -> None:
        session = SQLAlchemySession(thread.key, engine=self.db.engine)
        items: list[TResponseInputItem] = [
            {"role": "user", "content": "please delete customer 42"},
            {"role": "assistant", "content": "done"},
        ]
        await session.add_items(items)
        if old:
            naive_old = self.old.astimezone(UTC).replace(tzinfo=None)
            async with self.db.write() as db_session:
                await db_session.execute(
                    update(agent_sessions)
                    .where(agent_sessions.c.session_id == thread.key)
                    .values(updated_at=naive_old)
                )


async def _ids(db: Database, column: Mapped[Any] | ColumnElement[Any]) -> set[Any]:
    async with db.read() as session:
        return set(await session.scalars(select(column)))


async def _count(db: Database, table: FromClause | type[SQLModel]) -> int:
    async with db.read() as session:
        found = await session.scalar(select(func.count()).select_from(table))
        assert found is not None
        return int(found)


OLD_DONE = _thread("1.000")  # completed after an approval, long ago: all of it goes
OLD_WAITING = _thread("2.000")  # paused long ago, still waiting: stays
OLD_RUNNING = _thread("3.000")  # running since long ago: stays
OLD_INTERRUPTED = _thread("4.000")  # interrupted long ago: goes, with its job
RECENT_INTERRUPTED = _thread("5.000")  # interrupted recently: stays with its old job
RECENT_DONE = _thread("6.000")  # completed recently, its approvals decided long ago
NO_RUN = _thread("7.000")  # an old answered message that never needed a run
QUEUED = _thread("8.000")  # an old thread with a message still queued
LEASED = _thread("9.000")  # old and empty, but a process holds its lease
FAILED_PENDING = _thread("10.000")  # failed long ago but an approval is still pending


async def _scenario(b: Builder) -> Seen:
    seen = Seen()
    await b.completed_after_approval(OLD_DONE, "1.000", seen)
    await b.age_thread(OLD_DONE)

    job, run = await b.run_for_message(OLD_WAITING, "2.000")
    seen.approvals["waiting"] = (await b.pause(OLD_WAITING, run.id))[0].id
    await b.finish(job)
    seen.runs["waiting"], seen.jobs["waiting"] = run.id, job.id or 0
    await b.age_thread(OLD_WAITING)

    job, run = await b.run_for_message(OLD_RUNNING, "3.000")
    seen.runs["running"], seen.jobs["running"] = run.id, job.id or 0
    await b.age_thread(OLD_RUNNING)

    for thread, name in ((OLD_INTERRUPTED, "old_int"), (RECENT_INTERRUPTED, "recent_int")):
        job, run = await b.run_for_message(thread, thread.thread_ts)
        assert job.id is not None
        interrupted = await interrupt_job(b.db, job_id=job.id, cause="stopped", by=Claimant("test"))
        assert interrupted is not None
        assert interrupted.run is not None
        seen.runs[name], seen.jobs[name] = run.id, job.id
    await b.age_thread(OLD_INTERRUPTED)
    await b.age_thread(RECENT_INTERRUPTED, runs=False)

    await b.completed_after_approval(RECENT_DONE, "6.000", seen)
    await b.age_thread(RECENT_DONE, runs=False)
    async with b.db.write() as session:
        await session.execute(
            update(Approval)
            .where(col(Approval.run_id) == seen.runs["6.000"])
            .values(decided_at=b.old)
        )

    await b.message(NO_RUN, "7.000")
    seen.jobs["no_run"] = await b.finish_without_run(NO_RUN)
    await b.age_thread(NO_RUN)

    await b.message(QUEUED, "8.000")
    await b.age_thread(QUEUED)

    await b.message(LEASED, "9.000")
    await b.finish_without_run(LEASED)
    async with b.db.write() as session:
        await session.execute(
            update(Thread)
            .where(col(Thread.key) == LEASED.key)
            .values(lease_owner="worker", lease_expires_at=utcnow() + timedelta(minutes=5))
        )
    await b.age_thread(LEASED)

    job, run = await b.run_for_message(FAILED_PENDING, "10.000")
    seen.approvals["failed_pending"] = (await b.pause(FAILED_PENDING, run.id))[0].id
    await b.finish(job, JobStatus.FAILED)
    async with b.db.write() as session:
        await session.execute(
            update(Run).where(col(Run.id) == run.id).values(status=RunStatus.FAILED)
        )
    seen.runs["failed_pending"] = run.id
    await b.age_thread(FAILED_PENDING)

    await b.age_events()
    await b.message(RECENT_DONE, "6.500")  # one recent event; its job stays queued

    await b.history(OLD_DONE, old=True)
    await b.history(OLD_WAITING, old=True)
    await b.history(NO_RUN, old=True)
    await b.history(RECENT_DONE, old=False)
    return seen


async def _assert_live_things_stay(db: Database, seen: Seen) -> None:
    runs = await _ids(db, col(Run.id))
    for name in ("waiting", "running", "recent_int", "6.000", "failed_pending"):
        assert seen.runs[name] in runs, name
    approvals = await _ids(db, col(Approval.id))
    assert seen.approvals["waiting"] in approvals
    assert seen.approvals["failed_pending"] in approvals
    jobs = await _ids(db, col(Job.id))
    # The waiting run's finished job, the running job and the recently interrupted run's job.
    for name in ("waiting", "running", "recent_int"):
        assert seen.jobs[name] in jobs, name
    async with db.read() as session:
        queued = await session.scalar(
            select(func.count())
            .select_from(Job)
            .where(col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        )
    assert queued == 3  # QUEUED, the recent RECENT_DONE message, OLD_RUNNING's job


@pytest.mark.parametrize("batch_size", [500, 2])
async def test_old_finished_things_go_and_live_pending_or_recent_ones_stay(
    db: Database, batch_size: int
) -> None:
    b = Builder(db)
    seen = await _scenario(b)
    messages_before = await _count(db, agent_messages)

    counts = await purge(db, older_than=b.cutoff, purge_history=False, batch_size=batch_size)

    assert counts == PurgeCounts(
        # OLD_DONE and OLD_INTERRUPTED.
        runs=2,
        # OLD_DONE's two, and RECENT_DONE's two decided long ago.
        approvals=4,
        # Their entries in the decision log, one each.
        approval_decisions=4,
        # OLD_DONE's message and resume, OLD_INTERRUPTED's, NO_RUN's, LEASED's, and the
        # finished jobs of settled runs that stay: RECENT_DONE's two, FAILED_PENDING's.
        jobs=8,
        # All but the one recent delivery.
        slack_events=b.events - 1,
        # OLD_INTERRUPTED; LEASED is empty too but holds a lease.
        threads=1,
    )
    runs = await _ids(db, col(Run.id))
    assert seen.runs["1.000"] not in runs
    assert seen.runs["old_int"] not in runs
    approvals = await _ids(db, col(Approval.id))
    assert approvals == {seen.approvals["waiting"], seen.approvals["failed_pending"]}
    jobs = await _ids(db, col(Job.id))
    for name in ("1.000", "1.000/resume", "old_int", "no_run", "6.000", "6.000/resume"):
        assert seen.jobs[name] not in jobs, name
    await _assert_live_things_stay(db, seen)
    # The audit log outlives what it records: its own retention decides (storage.audit).
    for name in ("1.000/0", "1.000/1"):
        events = [e.event for e in await audit.entries(db, approval_id=seen.approvals[name])]
        assert events == ["requested", "approved"], name
    assert await _ids(db, col(SlackEvent.event_id)) == {f"Ev{b.events}"}
    threads = await _ids(db, col(Thread.key))
    # OLD_DONE and NO_RUN keep their rows while their conversations are kept.
    assert threads == {
        t.key
        for t in (
            OLD_DONE,
            OLD_WAITING,
            OLD_RUNNING,
            RECENT_INTERRUPTED,
            RECENT_DONE,
            NO_RUN,
            QUEUED,
            LEASED,
            FAILED_PENDING,
        )
    }
    # History is not touched without purge_history.
    assert await _count(db, agent_sessions) == 4
    assert await _count(db, agent_messages) == messages_before

    # Nothing left to do the second time.
    again = await purge(db, older_than=b.cutoff, purge_history=False, batch_size=batch_size)
    assert again == PurgeCounts()


@pytest.mark.parametrize("batch_size", [500, 2])
async def test_history_goes_only_when_asked_and_only_for_idle_threads(
    db: Database, batch_size: int
) -> None:
    b = Builder(db)
    seen = await _scenario(b)

    counts = await purge(db, older_than=b.cutoff, purge_history=True, batch_size=batch_size)

    # OLD_DONE's and NO_RUN's conversations; OLD_WAITING's stays (its run waits), and
    # RECENT_DONE's is recent.
    assert (counts.agent_sessions, counts.agent_messages) == (2, 4)
    async with db.read() as session:
        kept = set(await session.scalars(select(agent_sessions.c.session_id)))
    assert kept == {OLD_WAITING.key, RECENT_DONE.key}
    assert await _count(db, agent_messages) == 4
    # With their conversations gone, the emptied old threads go too.
    assert counts.threads == 3
    threads = await _ids(db, col(Thread.key))
    assert OLD_DONE.key not in threads
    assert NO_RUN.key not in threads
    assert OLD_INTERRUPTED.key not in threads
    assert LEASED.key in threads
    await _assert_live_things_stay(db, seen)


async def test_small_batches_purge_everything_old(db: Database) -> None:
    b = Builder(db)
    seen = Seen()
    threads = [_thread(f"{i}.000") for i in range(1, 6)]
    for thread in threads:
        await b.completed_after_approval(thread, thread.thread_ts, seen)
        await b.history(thread, old=True)
        await b.age_thread(thread)
    await b.age_events()

    counts = await purge(db, older_than=b.cutoff, purge_history=True, batch_size=2)

    assert counts == PurgeCounts(
        runs=5,
        approvals=10,
        approval_decisions=10,
        jobs=10,
        slack_events=5,
        threads=5,
        agent_sessions=5,
        agent_messages=10,
    )
    assert counts.total == 60
    for table in (
        Run,
        Approval,
        ApprovalDecision,
        Job,
        SlackEvent,
        Thread,
        agent_sessions,
        agent_messages,
    ):
        assert await _count(db, table) == 0, table


async def test_a_recent_cutoff_keeps_everything(db: Database) -> None:
    b = Builder(db)
    await b.completed_after_approval(OLD_DONE, "1.000", Seen())
    await b.history(OLD_DONE, old=False)

    counts = await purge(db, older_than=utcnow() - DAY, purge_history=True)

    assert counts == PurgeCounts()


async def test_bad_arguments_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="aware"):
        await purge(db, older_than=datetime(2020, 1, 1), purge_history=False)  # noqa: DTZ001
    with pytest.raises(ValueError, match="batch_size"):
        await purge(db, older_than=utcnow(), purge_history=False, batch_size=0)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_rows_another_transaction_holds_are_skipped_not_waited_for(db: Database) -> None:
    """A retry claiming an old interrupted run, or a turn appending to an old conversation,
    holds the row's lock: the purge leaves that run (with its job) and that conversation alone.
    SQLite has one writer at a time, so only PostgreSQL can have the two overlap."""
    b = Builder(db)
    job, run = await b.run_for_message(OLD_INTERRUPTED, "4.000")
    assert job.id is not None
    await interrupt_job(db, job_id=job.id, cause="stopped", by=Claimant("test"))
    await b.history(OLD_INTERRUPTED, old=True)
    await b.age_thread(OLD_INTERRUPTED)

    async with db.engine.connect() as other, other.begin():
        await other.execute(select(col(Run.id)).where(col(Run.id) == run.id).with_for_update())
        await other.execute(
            select(agent_sessions.c.session_id)
            .where(agent_sessions.c.session_id == OLD_INTERRUPTED.key)
            .with_for_update()
        )
        counts = await purge(db, older_than=b.cutoff, purge_history=True)

    assert (counts.runs, counts.jobs, counts.agent_sessions, counts.threads) == (0, 0, 0, 0)
    assert await _ids(db, col(Run.id)) == {run.id}
    assert await _ids(db, col(Job.id)) == {job.id}

    counts = await purge(db, older_than=b.cutoff, purge_history=True)

    assert (counts.runs, counts.jobs, counts.agent_sessions, counts.threads) == (1, 1, 1, 1)

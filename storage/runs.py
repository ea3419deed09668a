"""Runs: begun for a message, paused with their approvals, resumed once, finished.

A run is handed to its resume by `UPDATE … WHERE status = 'resuming'`: exactly one resume job
gets it. A pause replaces any older snapshot of the run in the transaction that stores its
approvals."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import audit, history, outbox
from storage.card_views import CardView
from storage.database import Database
from storage.ids import ThreadRef, new_approval_id, new_run_id
from storage.models import (
    STATE_UNREAD,
    Approval,
    Job,
    JobStatus,
    Run,
    RunStatus,
    Thread,
    utcnow,
)
from storage.outbox import Claimant, Delivery, Owed

# How many earlier runs of a thread are asked who wrote what a new run reads; older history
# is outside any run's window anyway.
EARLIER_RUNS_READ = 100

# Every run begins, pauses, resumes or ends through these: built once, bound each time (see
# storage/statements).
RUNS: Table = Run.__table__  # type: ignore[attr-defined]
THREADS: Table = Thread.__table__  # type: ignore[attr-defined]
_WAITING_RUN = (
    select(Run)
    .options(STATE_UNREAD)  # a parked message never reads it
    .where(
        col(Run.thread_key) == bindparam("thread_key"),
        col(Run.status).in_([RunStatus.WAITING, RunStatus.RESUMING]),
    )
    .order_by(col(Run.created_at).desc())
    .limit(1)
)
_EARLIER_REQUESTERS = (
    select(RUNS.c.requested_by, RUNS.c.requesters)
    .where(RUNS.c.thread_key == bindparam("thread_key"))
    .order_by(RUNS.c.created_at.desc())
    .limit(EARLIER_RUNS_READ)
)
_RESUME = (
    update(Run)
    .where(col(Run.id) == bindparam("run_id"), col(Run.status) == RunStatus.RESUMING)
    .values(status=RunStatus.RUNNING, updated_at=bindparam("at"))
    .returning(Run)
)
_PAUSE_APPROVALS = (
    select(Approval)
    .where(
        col(Approval.run_id) == bindparam("run_id"),
        col(Approval.generation) == bindparam("pause"),
    )
    .order_by(col(Approval.created_at), col(Approval.id))
)
_DEFERRED_JOBS = (
    select(Job)
    .where(col(Job.run_id) == bindparam("run_id"), col(Job.status) == JobStatus.DEFERRED)
    .order_by(col(Job.id))
)
_PAUSE = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run_id"), RUNS.c.status == RunStatus.RUNNING)
    .values(
        generation=RUNS.c.generation + 1,
        status=RunStatus.WAITING,
        state=bindparam("saved_state"),
        sdk_version=bindparam("sdk"),
        state_schema_version=bindparam("schema"),
        updated_at=bindparam("at"),
    )
    .returning(
        RUNS.c.generation,
        RUNS.c.requesters,
        RUNS.c.thread_key,
        # The thread's organization comes back with the run, not in a read of its own.
        select(THREADS.c.enterprise_id).where(THREADS.c.key == RUNS.c.thread_key).scalar_subquery(),
    )
)
_END_RUNNING = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run_id"), RUNS.c.status == RunStatus.RUNNING)
    .returning(RUNS.c.thread_key)
)
_END = _END_RUNNING.values(
    status=bindparam("new_status"), error_ref=bindparam("error"), updated_at=bindparam("at")
)
# A completed run drops its state.
_COMPLETE = _END.values(state=None)


async def get_run(db: Database, run_id: str) -> Run | None:
    async with db.read() as session:
        return await session.get(Run, run_id)


async def run_requesters(db: Database, run_id: str) -> list[str] | None:
    """Everyone who asked for a run's calls so far, as its approvals would name them; None
    for a run that is not stored."""
    run = await get_run(db, run_id)
    return None if run is None else requesters_of(run)


@dataclass(frozen=True)
class BegunRun:
    run: Run
    parked: bool  # the message waits on a run that waits for approval
    history: list[str]  # the thread's newest items, oldest first, for a run that starts


async def begin_run(
    session: AsyncSession,
    job: Job,
    *,
    requested_by: str,
    history_limit: int | None,
    parked_note: Owed | None = None,
    by: Claimant | None = None,
) -> BegunRun:
    """Changes `job` in place, so that one UPDATE carries all of the step's changes to it.

    A message parked on a waiting run owes the thread `parked_note`, stored here with it.
    """
    # No flush before commit: the job's changes then go out in one UPDATE, after the run's
    # INSERT.
    with session.no_autoflush:
        waiting = await session.scalar(_WAITING_RUN, {"thread_key": job.thread_key})
        if waiting is not None:
            job.status = JobStatus.DEFERRED
            job.run_id = waiting.id
            if parked_note is not None:
                await outbox.add(session, thread_key=job.thread_key, owed=[parked_note], by=by)
            return BegunRun(waiting, parked=True, history=[])
        items = await _history_window(session, job.thread_key, history_limit)
        # Whoever wrote the history this run reads asked for its calls as much as the starter.
        readers = await _earlier_requesters(session, job.thread_key) if items else []
    run = Run(
        id=new_run_id(),
        thread_key=job.thread_key,
        requested_by=requested_by,
        requesters=with_requesters([requested_by], readers),
    )
    session.add(run)
    job.run_id = run.id
    return BegunRun(run, parked=False, history=items)


async def _earlier_requesters(session: AsyncSession, thread_key: str) -> list[str]:
    """The people whose words the thread's earlier runs carried, newest runs first."""
    rows = await session.execute(_EARLIER_REQUESTERS, {"thread_key": thread_key})
    found: list[str] = []
    for starter, requesters in rows.all():
        found = with_requesters(found, [starter, *(requesters or [])])
    return found


async def _history_window(session: AsyncSession, thread_key: str, limit: int | None) -> list[str]:
    if limit is not None and limit <= 0:
        return []
    return await history.newest(session, thread_key=thread_key, limit=limit)


def with_requesters(requesters: Sequence[str], authors: Sequence[str | None]) -> list[str]:
    """The run's requesters and then the authors whose messages it now carries: in order, once."""
    return list(dict.fromkeys([*requesters, *(a for a in authors if a)]))


def requesters_of(asked: Approval | Run) -> list[str]:
    """Everyone who asked; the starter always counts, even on a row that lists nobody."""
    return with_requesters([asked.requested_by], asked.requesters)


@dataclass(frozen=True)
class BegunResume:
    run: Run
    approvals: list[Approval]  # the decisions of the run's current pause
    deferred: list[Job]  # messages that arrived while the run waited
    history: list[str]  # the thread's newest items, oldest first


async def begin_resume(
    session: AsyncSession, *, run_id: str, history_limit: int | None
) -> BegunResume | None:
    # The run comes back with the UPDATE that hands it over (RETURNING), not read again.
    run = await session.scalar(
        _RESUME,
        {"run_id": run_id, "at": utcnow()},
        execution_options={"populate_existing": True},
    )
    if run is None:
        return None
    approvals = await session.scalars(_PAUSE_APPROVALS, {"run_id": run.id, "pause": run.generation})
    deferred = list(await session.scalars(_DEFERRED_JOBS, {"run_id": run.id}))
    run.requesters = with_requesters(run.requesters, [job.user_id for job in deferred])
    return BegunResume(
        run,
        list(approvals),
        deferred,
        await _history_window(session, run.thread_key, history_limit),
    )


@dataclass(frozen=True)
class NewApproval:
    call_id: str
    tool_name: str
    arguments: str
    approvers: list[str]
    approvals_needed: int = 1  # distinct approvers the call needs before it runs
    # The rule that decided the call: its number (None when a tool's table did) and label.
    rule_index: int | None = None
    rule_label: str | None = None
    # Whether the card offers "Approve for this thread", and how long one would last.
    allow_for_thread: bool = False
    thread_approval_ttl: timedelta | None = None
    allow_edit: bool = False  # the card offers "Edit…"
    mirror_channel_id: str | None = None  # the card is also posted in this channel
    # Reminders and escalation: after how long, and whom an escalation adds.
    remind_after: timedelta | None = None
    escalate_after: timedelta | None = None
    escalate_to: list[str] | None = None


@dataclass(frozen=True)
class SavedState:
    state: str
    sdk_version: str
    schema_version: str


@dataclass(frozen=True)
class Paused:
    approvals: list[Approval]  # one per call, in the calls' order
    claimed: list[Delivery] | None = None  # with `claim`: what the thread is owed, claimed


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
    owed: Sequence[Owed] = (),
    by: Claimant | None = None,
    claim: bool = False,
) -> Paused:
    """Store the state, its approvals and the thread's new history items together, replacing
    any older snapshot of the run; the thread is owed `owed`, then one card per approval.
    With `claim`, what the thread is owed is claimed for `by` in the same transaction."""
    now = utcnow()
    async with db.write() as session:
        # One compare-and-set UPDATE with RETURNING, where a locked read and the ORM's flush
        # of the changed row took two statements.
        found = (
            await session.execute(
                _PAUSE,
                {
                    "run_id": run_id,
                    "saved_state": saved.state,
                    "sdk": saved.sdk_version,
                    "schema": saved.schema_version,
                    "at": now,
                },
            )
        ).first()
        if found is None:
            raise LookupError(f"run {run_id} is not running")
        generation, requesters, thread_key, org = found
        rows = [
            Approval(
                id=new_approval_id(),
                run_id=run_id,
                generation=generation,
                team_id=thread.team_id,
                enterprise_id=org,
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                call_id=item.call_id,
                tool_name=item.tool_name,
                arguments=item.arguments,
                requested_by=requested_by,
                requesters=with_requesters([requested_by], requesters),
                approvers=item.approvers,
                approvals_needed=item.approvals_needed,
                rule_index=item.rule_index,
                rule_label=item.rule_label,
                allow_for_thread=item.allow_for_thread,
                thread_approval_ttl_seconds=(
                    int(item.thread_approval_ttl.total_seconds())
                    if item.thread_approval_ttl is not None
                    else None
                ),
                allow_edit=item.allow_edit,
                mirror_channel_id=item.mirror_channel_id,
                expires_at=now + expire_after,
                remind_at=now + item.remind_after if item.remind_after else None,
                escalate_at=(
                    now + item.escalate_after if item.escalate_after and item.escalate_to else None
                ),
                escalate_to=list(item.escalate_to)
                if item.escalate_after and item.escalate_to
                else None,
                created_at=now,
            )
            for item in approvals
        ]
        session.add_all(rows)
        await audit.append_requests(session, rows)
        await history.append(session, thread_key=thread_key, items=new_history)
        cards = [outbox.card_of(row) for row in rows]
        await outbox.add(session, thread_key=thread_key, owed=[*owed, *cards], by=by)
        if not claim:
            return Paused(rows)
        if by is None:
            raise ValueError("a claim needs somebody to deliver what it takes")
        # New calls: nobody approved them yet, and no thread approval came of them.
        views = [CardView(row, [], None) for row in rows]
        claimed = await outbox.claim_in(session, thread_key=thread_key, by=by, current=views)
        return Paused(rows, claimed)


@dataclass(frozen=True)
class Finished:
    claimed: list[Delivery] | None = None  # with `claim`: what the thread is owed, claimed


async def finish_run(
    db: Database,
    *,
    run_id: str,
    status: RunStatus,
    error_ref: str | None = None,
    new_history: Sequence[str] = (),
    owed: Sequence[Owed] = (),
    by: Claimant | None = None,
    claim: bool = False,
) -> Finished | None:
    """End a running run, with the thread's new history items and the messages it owes the
    thread (its answer, or the note that it failed). A completed run drops its state; a
    failed one keeps it. With `claim`, what the thread is owed that `by` may deliver now is
    claimed in the same transaction. None when the run was not running.

    Only a running run ends here: one that recovery already marked interrupted stays so, and
    its items are not kept, as its retry will produce them again.
    """
    ending = _COMPLETE if status == RunStatus.COMPLETED else _END
    async with db.write() as session:
        thread_key = await session.scalar(
            ending,
            {"run_id": run_id, "new_status": status, "error": error_ref, "at": utcnow()},
        )
        if thread_key is None:
            return None
        await history.append(session, thread_key=thread_key, items=new_history)
        await outbox.add(session, thread_key=thread_key, owed=owed, by=by)
        if not claim or by is None:
            return Finished()
        return Finished(await outbox.claim_in(session, thread_key=thread_key, by=by))


async def add_requesters(db: Database, *, run_id: str, user_ids: Sequence[str]) -> list[str]:
    """Make the authors of what a run reads besides its history (the thread's earlier messages
    and files) requesters of its calls; committed before the run starts, so the approvals its
    pause copies them into already name them. Returns the run's requesters."""
    async with db.write() as session:
        run = await session.get(Run, run_id, with_for_update=True)
        if run is None:
            raise LookupError(f"run {run_id} is not stored")
        run.requesters = with_requesters(run.requesters, list(user_ids))
        return list(run.requesters)

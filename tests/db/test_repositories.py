"""Storage on both databases: dedupe, leases, and the compare-and-set transitions."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from storage import history
from storage.approvals import decide_approval, due_approval_ids
from storage.database import Database
from storage.ids import ThreadRef
from storage.messages import Accepted
from storage.models import Approval, ApprovalStatus, Job, JobKind, JobStatus, RunStatus, utcnow
from storage.outbox import Claimant
from storage.queue import (
    Step,
    finish_job,
    next_step_under_lease,
    release_thread_lease,
    threads_needing_work,
)
from storage.runs import NewApproval, SavedState, get_run, pause_run
from tests.storage_steps import accept, claim_resume, next_job, next_step

THREAD = ThreadRef("T1", "C1", "100.000")
LEASE = timedelta(seconds=30)


async def _accept(db: Database, event_id: str, ts: str, *, known_only: bool = False) -> Accepted:
    return await accept(
        db,
        event_id=event_id,
        thread=THREAD,
        user_id="U1",
        message_ts=ts,
        text="hello",
        only_known_thread=known_only,
    )


async def _paused_run(db: Database, calls: int = 2) -> tuple[str, list[Approval]]:
    await _accept(db, "Ev0", "100.000")
    step = await next_step(db, thread_key=THREAD.key, owner="w", ttl=LEASE)
    assert step is not None
    assert step.run is not None
    begun = step.run
    assert not begun.parked
    run = begun.run
    approvals = (
        await pause_run(
            db,
            by=Claimant("test"),
            run_id=run.id,
            saved=SavedState(
                state='{"$schemaVersion": "1.21"}', sdk_version="x", schema_version="1.21"
            ),
            approvals=[
                NewApproval(
                    call_id=f"call_{i}", tool_name="delete", arguments="{}", approvers=["U9"]
                )
                for i in range(calls)
            ],
            thread=THREAD,
            requested_by="U1",
            expire_after=timedelta(hours=1),
        )
    ).approvals
    return run.id, approvals


async def test_a_retried_event_and_a_double_delivered_message_queue_one_job(db: Database) -> None:
    assert await _accept(db, "Ev1", "100.000") == Accepted.QUEUED
    assert await _accept(db, "Ev1", "100.000") == Accepted.DUPLICATE_EVENT
    # The same message as a second event (app_mention and message).
    assert await _accept(db, "Ev2", "100.000") == Accepted.DUPLICATE_MESSAGE
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 1


async def test_unknown_threads_are_not_joined_without_a_mention(db: Database) -> None:
    assert await _accept(db, "Ev1", "200.000", known_only=True) == Accepted.NOT_OUR_THREAD
    assert await _accept(db, "Ev2", "100.000") == Accepted.QUEUED
    assert await _accept(db, "Ev3", "100.500", known_only=True) == Accepted.QUEUED


async def test_one_lease_holder_at_a_time_and_expired_leases_are_taken_over(db: Database) -> None:
    await _accept(db, "Ev1", "100.000")
    await _accept(db, "Ev2", "100.001")
    await _accept(db, "Ev3", "100.002")
    ttl = timedelta(seconds=30)
    assert await next_job(db, thread_key=THREAD.key, owner="a", ttl=ttl) is not None
    assert await next_job(db, thread_key=THREAD.key, owner="b", ttl=ttl) is None
    await release_thread_lease(db, thread_key=THREAD.key, owner="a")
    assert await next_job(db, thread_key=THREAD.key, owner="b", ttl=-ttl) is not None
    # b's lease is already expired: a may take it.
    assert await next_job(db, thread_key=THREAD.key, owner="a", ttl=ttl) is not None


async def test_jobs_start_in_order_and_only_once(db: Database) -> None:
    for i in range(3):
        await _accept(db, f"Ev{i}", f"100.00{i}")
    started = [await next_job(db, thread_key=THREAD.key, owner="test", ttl=LEASE) for _ in range(4)]
    assert [job.message_ts if job else None for job in started] == [
        "100.000",
        "100.001",
        "100.002",
        None,
    ]


async def test_twenty_concurrent_decisions_have_one_winner(db: Database) -> None:
    run_id, approvals = await _paused_run(db, calls=1)
    results = await asyncio.gather(
        *(
            decide_approval(
                db,
                by=Claimant("test"),
                approval_id=approvals[0].id,
                status=ApprovalStatus.APPROVED,
                decided_by=f"U{i}",
            )
            for i in range(20)
        )
    )
    winners = [r for r in results if r is not None and r.won]
    assert len(winners) == 1
    assert sum(1 for r in results if r is not None and r.resume_queued) == 1
    async with db.read() as session:
        resumes = await session.scalar(
            select(func.count()).select_from(Job).where(col(Job.kind) == JobKind.RESUME)
        )
    assert resumes == 1
    run = await get_run(db, run_id)
    assert run is not None
    assert run.status == RunStatus.RESUMING


async def test_concurrent_decisions_of_sibling_calls_queue_exactly_one_resume(db: Database) -> None:
    _run_id, approvals = await _paused_run(db, calls=5)
    results = await asyncio.gather(
        *(
            decide_approval(
                db,
                by=Claimant("test"),
                approval_id=a.id,
                status=ApprovalStatus.APPROVED,
                decided_by="U9",
            )
            for a in approvals
        )
    )
    assert all(r is not None and r.won for r in results)
    assert sum(1 for r in results if r is not None and r.resume_queued) == 1


async def test_a_resume_is_claimed_once(db: Database) -> None:
    run_id, approvals = await _paused_run(db, calls=1)
    await decide_approval(
        db,
        by=Claimant("test"),
        approval_id=approvals[0].id,
        status=ApprovalStatus.REJECTED,
        decided_by="U9",
    )
    claims = await asyncio.gather(*(claim_resume(db, run_id=run_id) for _ in range(10)))
    assert sum(1 for c in claims if c is not None) == 1


async def test_pausing_again_replaces_the_state_and_bumps_the_generation(db: Database) -> None:
    run_id, approvals = await _paused_run(db, calls=1)
    await decide_approval(
        db,
        by=Claimant("test"),
        approval_id=approvals[0].id,
        status=ApprovalStatus.APPROVED,
        decided_by="U9",
    )
    await claim_resume(db, run_id=run_id)
    second = (
        await pause_run(
            db,
            by=Claimant("test"),
            run_id=run_id,
            saved=SavedState(state='{"new": true}', sdk_version="x", schema_version="1.21"),
            approvals=[
                NewApproval(call_id="call_b", tool_name="delete", arguments="{}", approvers=[])
            ],
            thread=THREAD,
            requested_by="U1",
            expire_after=timedelta(hours=1),
        )
    ).approvals
    run = await get_run(db, run_id)
    assert run is not None
    assert run.state == '{"new": true}'
    assert run.generation == 2
    assert second[0].generation == 2
    async with db.read() as session:
        current = await session.scalars(
            select(Approval).where(col(Approval.run_id) == run_id, col(Approval.generation) == 2)
        )
    assert [a.call_id for a in current] == ["call_b"]


async def test_due_approvals_are_found_by_expiry(db: Database) -> None:
    _run_id, approvals = await _paused_run(db, calls=2)
    assert await due_approval_ids(db, now=utcnow()) == []
    due = await due_approval_ids(db, now=utcnow() + timedelta(hours=2))
    assert sorted(due) == sorted(a.id for a in approvals)


async def test_finished_jobs_leave_the_queue(db: Database) -> None:
    await _accept(db, "Ev1", "100.000")
    job = await next_job(db, thread_key=THREAD.key, owner="test", ttl=LEASE)
    assert job is not None
    assert job.id is not None
    await finish_job(db, job_id=job.id, status=JobStatus.DONE)
    assert await threads_needing_work(db) == []


async def _step(db: Database, *, owner: str = "w") -> Step | None:
    return await next_step_under_lease(
        db, thread_key=THREAD.key, owner=owner, ttl=LEASE, history_limit=10
    )


async def test_a_step_starts_the_job_and_its_run_in_one_go(db: Database) -> None:
    async with db.write() as session:
        await history.append(session, thread_key=THREAD.key, items=['{"role":"user"}'] * 3)
    await _accept(db, "Ev1", "100.000")

    step = await _step(db)

    assert step is not None
    assert step.job.status == JobStatus.RUNNING
    assert step.run is not None
    assert not step.run.parked
    assert step.run.history == ['{"role":"user"}'] * 3
    assert step.run.run.status == RunStatus.RUNNING
    async with db.read() as session:
        job = await session.get(Job, step.job.id)
    assert job is not None
    assert job.run_id == step.run.run.id


async def test_a_message_step_behind_a_waiting_run_is_parked(db: Database) -> None:
    run_id, _approvals = await _paused_run(db, calls=1)
    await _accept(db, "Ev2", "100.500")

    step = await _step(db)

    assert step is not None
    assert step.run is not None
    assert step.run.parked
    assert step.run.run.id == run_id
    async with db.read() as session:
        job = await session.get(Job, step.job.id)
    assert job is not None
    assert job.status == JobStatus.DEFERRED


async def test_a_resume_step_claims_the_run_and_a_second_one_does_not(db: Database) -> None:
    run_id, approvals = await _paused_run(db, calls=1)
    await finish_job(db, job_id=1, status=JobStatus.DONE)
    decision = await decide_approval(
        db,
        by=Claimant("test"),
        approval_id=approvals[0].id,
        status=ApprovalStatus.APPROVED,
        decided_by="U9",
    )
    assert decision is not None
    assert decision.resume_queued
    async with db.write() as session:  # a duplicate resume job, as a racing retry might queue
        session.add(
            Job(thread_key=THREAD.key, kind=JobKind.RESUME, run_id=run_id, dedupe_key="dup")
        )

    first, second = await _step(db), await _step(db)

    assert first is not None
    assert first.resume is not None
    assert first.resume.run.id == run_id
    assert [a.status for a in first.resume.approvals] == [ApprovalStatus.APPROVED]
    assert second is not None
    assert second.job.kind == JobKind.RESUME
    assert second.resume is None

"""Quorum votes and the decision log on both databases: one vote per person, one decision."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from storage import decision_log
from storage.approvals import VoteOutcome, decide_approval, get_approval, vote_to_approve
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import (
    Approval,
    ApprovalDecision,
    ApprovalStatus,
    DecisionKind,
    Job,
    JobKind,
    OutboxKind,
    OutboxMessage,
    utcnow,
)
from storage.outbox import Claimant
from storage.runs import NewApproval
from tests.storage_steps import paused_on

THREAD = ThreadRef("T1", "C1", "100.000")
BY = Claimant("test")


async def _paused(db: Database, *, approvals_needed: int) -> Approval:
    call = NewApproval(
        call_id="call_1",
        tool_name="refund",
        arguments="{}",
        approvers=["U9"],
        approvals_needed=approvals_needed,
    )
    return await paused_on(db, thread=THREAD, call=call, by=BY)


async def _count(db: Database, model: type[ApprovalDecision] | type[Job]) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def _cards_owed(db: Database, approval_id: str) -> int:
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).where(
                col(OutboxMessage.kind) == OutboxKind.CARD,
                col(OutboxMessage.approval_id) == approval_id,
            )
        )
        return count or 0


async def test_votes_count_once_per_person_and_the_last_needed_one_decides(
    db: Database,
) -> None:
    approval = await _paused(db, approvals_needed=2)
    assert approval.approvals_needed == 2
    assert await _cards_owed(db, approval.id) == 1  # the card itself

    first = await vote_to_approve(db, approval_id=approval.id, user_id="UA", by=BY)
    assert first is not None
    assert (first.outcome, first.approvers) == (VoteOutcome.COUNTED, ["UA"])
    assert await _cards_owed(db, approval.id) == 2  # the count, owed with the vote

    again = await vote_to_approve(db, approval_id=approval.id, user_id="UA", by=BY)
    assert again is not None
    assert (again.outcome, again.approvers) == (VoteOutcome.REPEATED, ["UA"])
    assert await _cards_owed(db, approval.id) == 2
    stored = await get_approval(db, approval.id)
    assert stored is not None
    assert stored.status == ApprovalStatus.PENDING

    second = await vote_to_approve(db, approval_id=approval.id, user_id="UB", by=BY)
    assert second is not None
    assert (second.outcome, second.approvers) == (VoteOutcome.DECIDED, ["UA", "UB"])
    assert second.resume_queued
    assert second.approval.status == ApprovalStatus.APPROVED
    assert second.approval.decided_by == "UB"
    assert await _cards_owed(db, approval.id) == 3

    late = await vote_to_approve(db, approval_id=approval.id, user_id="UC", by=BY)
    assert late is not None
    assert (late.outcome, late.approvers) == (VoteOutcome.TOO_LATE, ["UA", "UB"])

    entries = await decision_log.entries(db, approval.id)
    assert [(e.user_id, e.kind) for e in entries] == [
        ("UA", DecisionKind.APPROVE),
        ("UB", DecisionKind.APPROVE),
    ]
    assert {(e.run_id, e.team_id) for e in entries} == {(approval.run_id, "T1")}
    assert all(e.created_at <= utcnow() for e in entries)


async def test_a_rejection_after_a_vote_and_an_expiry_are_logged_with_who_and_why(
    db: Database,
) -> None:
    approval = await _paused(db, approvals_needed=2)
    await vote_to_approve(db, approval_id=approval.id, user_id="UA", by=BY)
    rejected = await decide_approval(
        db,
        approval_id=approval.id,
        status=ApprovalStatus.REJECTED,
        decided_by="UB",
        reason="too much",
        by=BY,
    )
    assert rejected is not None
    assert rejected.won
    # A decision that lost the race is not on record: it changed nothing.
    expired = await decide_approval(
        db, approval_id=approval.id, status=ApprovalStatus.EXPIRED, decided_by=None, by=BY
    )
    assert expired is not None
    assert not expired.won

    entries = await decision_log.entries(db, approval.id)
    assert [(e.user_id, e.kind, e.reason) for e in entries] == [
        ("UA", DecisionKind.APPROVE, None),
        ("UB", DecisionKind.REJECT, "too much"),
    ]


async def test_an_expiry_is_logged_without_a_person(db: Database) -> None:
    approval = await _paused(db, approvals_needed=2)
    await vote_to_approve(db, approval_id=approval.id, user_id="UA", by=BY)
    decision = await decide_approval(
        db, approval_id=approval.id, status=ApprovalStatus.EXPIRED, decided_by=None, by=BY
    )
    assert decision is not None
    assert decision.won
    entries = await decision_log.entries(db, approval.id)
    assert [(e.user_id, e.kind) for e in entries] == [
        ("UA", DecisionKind.APPROVE),
        (None, DecisionKind.EXPIRE),
    ]


async def test_the_database_refuses_a_second_approval_by_one_person(db: Database) -> None:
    approval = await _paused(db, approvals_needed=2)

    def entry(kind: DecisionKind, user_id: str | None) -> ApprovalDecision:
        return ApprovalDecision(
            approval_id=approval.id,
            run_id=approval.run_id,
            team_id="T1",
            user_id=user_id,
            kind=kind,
        )

    async with db.write() as session:
        # Other kinds repeat freely: one person may reject after approving, expiries have
        # nobody.
        session.add_all(
            [
                entry(DecisionKind.APPROVE, "UA"),
                entry(DecisionKind.REJECT, "UA"),
                entry(DecisionKind.REJECT, "UA"),
                entry(DecisionKind.EXPIRE, None),
                entry(DecisionKind.EXPIRE, None),
            ]
        )
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(entry(DecisionKind.APPROVE, "UA"))
    assert await _count(db, ApprovalDecision) == 5


@pytest.mark.parametrize("approvals_needed", [1, 2, 5])
async def test_twenty_concurrent_votes_from_two_processes_decide_once(
    db: Database, approvals_needed: int
) -> None:
    approval = await _paused(db, approvals_needed=approvals_needed)
    # A second engine stands in for a second process (on SQLite, one process: the same one).
    other = db if db.is_sqlite else Database(db.url)
    try:
        votes = await asyncio.gather(
            *(
                vote_to_approve(
                    (db, other)[i % 2], approval_id=approval.id, user_id=f"UV{i:02d}", by=BY
                )
                for i in range(20)
            )
        )
    finally:
        if other is not db:
            await other.dispose()

    outcomes = [vote.outcome for vote in votes if vote is not None]
    assert outcomes.count(VoteOutcome.DECIDED) == 1
    assert outcomes.count(VoteOutcome.COUNTED) == approvals_needed - 1
    assert outcomes.count(VoteOutcome.TOO_LATE) == 20 - approvals_needed
    assert len(await decision_log.approved_by(db, approval.id)) == approvals_needed
    async with db.read() as session:
        resumes = await session.scalar(select(func.count()).where(col(Job.kind) == JobKind.RESUME))
    assert resumes == 1

"""Thread approvals in storage on both databases: given only where the call's row offers it,
given once, revoked once, purged once ended."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from storage import thread_approvals
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, ApprovalStatus, ThreadApproval, utcnow
from storage.outbox import Claimant
from storage.retention import purge
from storage.runs import NewApproval
from storage.thread_approvals import GiveOutcome, RevokeOutcome
from tests.storage_steps import paused_on

THREAD = ThreadRef("T1", "C1", "100.000")
BY = Claimant("test")


async def _paused(db: Database, *, allow_for_thread: bool, approvals_needed: int = 1) -> Approval:
    call = NewApproval(
        call_id="call_1",
        tool_name="refund",
        arguments="{}",
        approvers=["U9"],
        approvals_needed=approvals_needed,
        rule_index=2,
        allow_for_thread=allow_for_thread,
        thread_approval_ttl=timedelta(hours=3),
    )
    return await paused_on(db, thread=THREAD, call=call, by=BY)


async def test_a_row_that_does_not_offer_it_is_not_approved_for_the_thread(db: Database) -> None:
    approval = await _paused(db, allow_for_thread=False)
    given = await thread_approvals.give(db, approval_id=approval.id, user_id="U9", by=BY)
    assert given is not None
    assert given.outcome == GiveOutcome.NOT_OFFERED
    assert given.approval.status == ApprovalStatus.PENDING


async def test_a_quorum_is_never_approved_for_the_thread(db: Database) -> None:
    approval = await _paused(db, allow_for_thread=True, approvals_needed=2)
    given = await thread_approvals.give(db, approval_id=approval.id, user_id="U9", by=BY)
    assert given is not None
    assert given.outcome == GiveOutcome.NOT_OFFERED


async def test_concurrent_clicks_give_one_thread_approval(db: Database) -> None:
    approval = await _paused(db, allow_for_thread=True)
    results = await asyncio.gather(
        *(
            thread_approvals.give(db, approval_id=approval.id, user_id=f"U9{i}", by=BY)
            for i in range(8)
        )
    )
    outcomes = sorted(str(r.outcome) for r in results if r is not None)
    assert outcomes.count(GiveOutcome.GIVEN) == 1
    async with db.read() as session:
        [stored] = (await session.scalars(select(ThreadApproval))).all()
    assert stored.rule_index == 2
    assert stored.approvers == ["U9"]
    assert stored.expires_at - stored.created_at == timedelta(hours=3)


async def test_revoked_once_and_purged_once_ended(db: Database) -> None:
    approval = await _paused(db, allow_for_thread=True)
    given = await thread_approvals.give(db, approval_id=approval.id, user_id="U9", by=BY)
    assert given is not None
    assert given.thread_approval is not None
    ta_id = given.thread_approval.id
    first, second = await asyncio.gather(
        thread_approvals.revoke(db, thread_approval_id=ta_id, user_id="U1", by=BY),
        thread_approvals.revoke(db, thread_approval_id=ta_id, user_id="U9", by=BY),
    )
    assert first is not None
    assert second is not None
    assert sorted([first.outcome, second.outcome]) == sorted(
        [RevokeOutcome.REVOKED, RevokeOutcome.ALREADY_REVOKED]
    )
    counts = await purge(db, older_than=utcnow() - timedelta(days=1), purge_history=False)
    assert counts.thread_approvals == 0  # ended just now: kept until it is old
    counts = await purge(db, older_than=utcnow() + timedelta(seconds=1), purge_history=False)
    assert counts.thread_approvals == 1
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ThreadApproval)) == 0

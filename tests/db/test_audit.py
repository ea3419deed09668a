"""The audit log on both databases: each change appends its entry in its own transaction, the
log keeps no content, and it outlives the approvals' retention."""

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage import audit
from storage.approvals import (
    claim_execution,
    decide_approval,
    edit_arguments,
    record_outcome,
    vote_to_approve,
)
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, ApprovalStatus, AuditEntry, utcnow
from storage.outbox import Claimant
from storage.runs import NewApproval
from storage.thread_approvals import give, revoke
from tests.storage_steps import paused_on

THREAD = ThreadRef("T1", "C1", "100.000")
BY = Claimant("test")
ARGUMENTS = '{"amount": 120}'


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _paused(
    db: Database, *, thread: ThreadRef = THREAD, approvals_needed: int = 1, **rule: object
) -> Approval:
    call = NewApproval(
        call_id="call_1",
        tool_name="refund",
        arguments=ARGUMENTS,
        approvers=["U9", "U8"],
        approvals_needed=approvals_needed,
        **rule,  # type: ignore[arg-type]
    )
    return await paused_on(db, thread=thread, call=call, by=BY)


async def test_a_call_s_story_is_told_in_order_with_the_people_who_acted(db: Database) -> None:
    approval = await _paused(db, approvals_needed=2, rule_index=0, rule_label="big refunds")
    await vote_to_approve(db, approval_id=approval.id, user_id="U9", by=BY)
    await vote_to_approve(db, approval_id=approval.id, user_id="U9", by=BY)  # changes nothing
    await vote_to_approve(db, approval_id=approval.id, user_id="U8", by=BY)
    assert (await claim_execution(db, run_id=approval.run_id, call_id="call_1")).may_run
    assert not (await claim_execution(db, run_id=approval.run_id, call_id="call_1")).may_run
    await record_outcome(db, run_id=approval.run_id, call_id="call_1", outcome="refunded 120")

    story = await audit.entries(db, approval_id=approval.id)

    assert [(e.event, e.user) for e in story] == [
        ("requested", "threadgate"),
        ("approved", "U9"),
        ("approved", "U8"),
        ("started", "threadgate"),
        ("executed", "threadgate"),
    ]
    first = story[0]
    assert (first.team, first.channel, first.thread_ts, first.tool) == (
        "T1",
        "C1",
        "100.000",
        "refund",
    )
    assert first.rule == "big refunds"
    assert first.detail is not None
    assert "needs 2 approvals from U9, U8" in first.detail
    assert all(e.arguments_sha256 == _digest(ARGUMENTS) for e in story)
    assert story[-1].output_sha256 == _digest("refunded 120")
    assert [e.at for e in story] == sorted(e.at for e in story)


async def test_a_rejection_an_expiry_and_an_edit_are_entries(db: Database) -> None:
    rejected = await _paused(db)
    await decide_approval(
        db,
        approval_id=rejected.id,
        status=ApprovalStatus.REJECTED,
        decided_by="U9",
        reason="not this customer",
        by=BY,
    )
    expired = await _paused(db, thread=ThreadRef("T1", "C1", "200.000"))
    await decide_approval(
        db, approval_id=expired.id, status=ApprovalStatus.EXPIRED, decided_by=None, by=BY
    )
    edited = await _paused(db, thread=ThreadRef("T1", "C1", "300.000"))
    new_arguments = '{"amount": 12}'
    await edit_arguments(
        db,
        approval_id=edited.id,
        user_id="U9",
        arguments=new_arguments,
        requirement=None,
        vote=True,
        by=BY,
    )

    assert [(e.event, e.user) for e in await audit.entries(db, approval_id=rejected.id)] == [
        ("requested", "threadgate"),
        ("rejected", "U9"),
    ]
    assert [(e.event, e.user) for e in await audit.entries(db, approval_id=expired.id)] == [
        ("requested", "threadgate"),
        ("expired", "threadgate"),
    ]
    story = await audit.entries(db, approval_id=edited.id)
    assert [(e.event, e.user) for e in story] == [
        ("requested", "threadgate"),
        ("edited", "U9"),
        ("approved", "U9"),
    ]
    # What was approved is what the edit put in place: its digest proves it.
    assert story[0].arguments_sha256 == _digest(ARGUMENTS)
    assert story[2].arguments_sha256 == _digest(new_arguments)


async def test_the_log_holds_no_conversation_content(db: Database) -> None:
    approval = await _paused(db)
    await decide_approval(
        db,
        approval_id=approval.id,
        status=ApprovalStatus.REJECTED,
        decided_by="U9",
        reason="secret-reason-text",
        by=BY,
    )
    stored = json.dumps([entry.as_dict() for entry in await audit.entries(db)])
    assert "secret-reason-text" not in stored
    assert "amount" not in stored


async def test_revoking_a_thread_approval_is_an_entry(db: Database) -> None:
    approval = await _paused(db, allow_for_thread=True, thread_approval_ttl=timedelta(hours=1))
    given = await give(db, approval_id=approval.id, user_id="U9", by=BY)
    assert given is not None
    assert given.thread_approval is not None
    await revoke(db, thread_approval_id=given.thread_approval.id, user_id="U8", by=BY)

    events = [(e.event, e.user) for e in await audit.entries(db, approval_id=approval.id)]
    assert events == [
        ("requested", "threadgate"),
        ("thread_approval_granted", "U9"),
        ("thread_approval_revoked", "U8"),
    ]


async def test_the_log_has_its_own_retention(db: Database) -> None:
    approval = await _paused(db)
    await decide_approval(
        db, approval_id=approval.id, status=ApprovalStatus.REJECTED, decided_by="U9", by=BY
    )
    assert len(await audit.entries(db, approval_id=approval.id)) == 2
    assert await audit.purge_before(db, utcnow() - timedelta(days=1)) == 0
    everything = await audit.count(db)
    removed = await audit.purge_before(db, utcnow() + timedelta(seconds=1), batch_size=1)
    assert removed == everything
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize("limit", [1, 2])
async def test_entries_with_a_limit_are_the_newest_in_order(db: Database, limit: int) -> None:
    approval = await _paused(db)
    await vote_to_approve(db, approval_id=approval.id, user_id="U9", by=BY)
    newest = await audit.entries(db, limit=limit)
    everything = await audit.entries(db)
    assert newest == everything[-limit:]

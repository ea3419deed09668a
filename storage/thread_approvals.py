"""Thread approvals: given with one call's approval, used by later calls, revoked once.

Giving one is the same compare-and-set as an approval (under the same locks, in the same
transaction that stores the thread approval), so a call is never both rejected and approved
for its thread. Using one writes, in one transaction, the approved row the execution ledger
claims, its `auto_approval` entry in the decision log and the post it owes the thread; the
thread approval's row is locked while it is read, so a revocation that commits first is seen,
and one that commits later takes effect for the next call. Expiry is by time alone.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import audit, decision_log, outbox
from storage.approvals import _decide, lock_call
from storage.database import Database
from storage.ids import ThreadRef, new_approval_id, new_thread_approval_id
from storage.models import (
    Approval,
    ApprovalStatus,
    DecisionKind,
    OutboxKind,
    Run,
    Thread,
    ThreadApproval,
    utcnow,
)
from storage.outbox import Claimant, Owed
from storage.runs import requesters_of, with_requesters
from storage.statements import rowcount


class GiveOutcome(StrEnum):
    GIVEN = "given"  # the call is approved, and the thread approval stored
    NOT_OFFERED = "not_offered"  # the call's policy never offered it (or needs a quorum)
    TOO_LATE = "too_late"  # the call was decided before: nothing changed


@dataclass(frozen=True)
class Given:
    approval: Approval
    outcome: GiveOutcome
    thread_approval: ThreadApproval | None = None
    resume_queued: bool = False


async def get_thread_approval(db: Database, thread_approval_id: str) -> ThreadApproval | None:
    async with db.read() as session:
        return await session.get(ThreadApproval, thread_approval_id)


async def give(
    db: Database,
    *,
    approval_id: str,
    user_id: str,
    by: Claimant | None = None,
    run_id: str | None = None,
) -> Given | None:
    """Approve the call for its thread: the call's approval (it needs one approver, which the
    config guarantees and this checks again) and the thread approval, in one transaction."""
    async with db.write() as session:
        locked = await lock_call(session, approval_id, run_id=run_id)
        if locked is None:
            return None
        approval, run = locked
        if approval.status != ApprovalStatus.PENDING:
            return Given(approval, GiveOutcome.TOO_LATE)
        if not approval.allow_for_thread or approval.approvals_needed != 1:
            return Given(approval, GiveOutcome.NOT_OFFERED)
        await decision_log.record(
            session, approval, kind=DecisionKind.THREAD_APPROVAL, user_id=user_id
        )
        decision = await _decide(
            session, approval, run, status=ApprovalStatus.APPROVED, decided_by=user_id, by=by
        )
        if not decision.won:
            return Given(decision.approval, GiveOutcome.TOO_LATE)
        now = utcnow()
        ttl = timedelta(seconds=approval.thread_approval_ttl_seconds or 0)
        thread_approval = ThreadApproval(
            id=new_thread_approval_id(),
            approval_id=approval.id,
            team_id=approval.team_id,
            channel_id=approval.channel_id,
            thread_ts=approval.thread_ts,
            tool_name=approval.tool_name,
            rule_index=approval.rule_index,
            approved_by=user_id,
            approvers=list(approval.approvers),
            requesters=requesters_of(approval),
            created_at=now,
            expires_at=now + ttl,
        )
        session.add(thread_approval)
        await session.flush()
        return Given(decision.approval, GiveOutcome.GIVEN, thread_approval, decision.resume_queued)


@dataclass(frozen=True)
class CoveredCall:
    """A call that needs approval, described as the policy decided it."""

    run_id: str
    call_id: str
    thread: ThreadRef
    tool_name: str
    arguments: str
    rule_index: int | None
    rule_label: str | None
    approvers: Sequence[str]
    # With self-approval off, a thread approval does not cover a call its giver asked for.
    allow_self_approval: bool = False


@dataclass(frozen=True)
class Cover:
    approval: Approval  # the approved row the ledger claims; its card is the post
    thread_approval_id: str
    new: bool  # False: the call was already let through, and its post already owed


async def cover(db: Database, call: CoveredCall, *, by: Claimant | None) -> Cover | None:
    """Let the call through under an active thread approval of its thread, tool and rule, or
    say None: it needs a card. A call asked about again (the SDK may ask more than once) is
    answered from its row, without a second post; a call that already has a card is not
    covered, so the decision on that card stands.

    Most calls have nothing to cover them: a read says so without taking the write lock. A
    thread approval that appears just after that read covers the next call, not this one."""
    now = utcnow()
    thread = call.thread
    async with db.read() as session:
        existing = await session.scalar(_CALL_ROW, _call_of(call))
        if existing is not None:
            return _already_asked(existing)
        if await session.scalar(*_active_thread_approval(call, now)) is None:
            return None
    async with db.write() as session:
        existing = await session.scalar(_CALL_ROW, _call_of(call))
        if existing is not None:
            return _already_asked(existing)
        thread_approval = await session.scalar(*_active_thread_approval(call, now, lock=True))
        if thread_approval is None:
            return None
        run = await session.get(Run, call.run_id)
        if run is None:
            return None
        requesters = with_requesters([run.requested_by], run.requesters)
        if not call.allow_self_approval and thread_approval.approved_by in requesters:
            return None
        org = await session.scalar(
            select(col(Thread.enterprise_id)).where(col(Thread.key) == thread.key)
        )
        approval = Approval(
            id=new_approval_id(),
            run_id=run.id,
            generation=run.generation,
            team_id=thread.team_id,
            enterprise_id=org,
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            call_id=call.call_id,
            tool_name=call.tool_name,
            arguments=call.arguments,
            requested_by=run.requested_by,
            requesters=requesters,
            approvers=list(call.approvers),
            rule_index=call.rule_index,
            rule_label=call.rule_label,
            thread_approval_id=thread_approval.id,
            status=ApprovalStatus.APPROVED,
            decided_by=thread_approval.approved_by,
            decided_at=now,
            expires_at=thread_approval.expires_at,
            created_at=now,
        )
        session.add(approval)
        await session.flush()
        await audit.append_requests(session, [approval])
        await decision_log.record(
            session, approval, kind=DecisionKind.AUTO_APPROVAL, user_id=thread_approval.approved_by
        )
        post = outbox.card_of(approval)
        await outbox.add(session, thread_key=thread.key, owed=[post], by=by)
        return Cover(approval, thread_approval.id, new=True)


def _already_asked(existing: Approval) -> Cover | None:
    """A call asked about again: covered if its row was let through, else its card stands."""
    if existing.thread_approval_id is None:
        return None
    return Cover(existing, existing.thread_approval_id, new=False)


# Every call that needs approval asks these first: built once, bound each time (see
# storage/statements).
_CALL_ROW = (
    select(Approval)
    .where(col(Approval.run_id) == bindparam("run_id"), col(Approval.call_id) == bindparam("call"))
    .order_by(col(Approval.generation).desc())
    .limit(1)
)


def _call_of(call: CoveredCall) -> dict[str, str]:
    return {"run_id": call.run_id, "call": call.call_id}


def _thread_approvals(rule: ColumnElement[bool]) -> Select[ThreadApproval]:
    return (
        select(ThreadApproval)
        .where(
            col(ThreadApproval.team_id) == bindparam("team_id"),
            col(ThreadApproval.channel_id) == bindparam("channel_id"),
            col(ThreadApproval.thread_ts) == bindparam("thread_ts"),
            col(ThreadApproval.tool_name) == bindparam("tool"),
            rule,
            col(ThreadApproval.revoked_at).is_(None),
            col(ThreadApproval.expires_at) > bindparam("now"),
        )
        .order_by(col(ThreadApproval.created_at).desc())
        .limit(1)
    )


# By whether the call's tool table (no rule) or a rule decided it, and whether it locks.
_ACTIVE = {
    ruled: (query, query.with_for_update())
    for ruled, query in (
        (False, _thread_approvals(col(ThreadApproval.rule_index).is_(None))),
        (True, _thread_approvals(col(ThreadApproval.rule_index) == bindparam("rule"))),
    )
}


def _active_thread_approval(
    call: CoveredCall, now: datetime, *, lock: bool = False
) -> tuple[Select[ThreadApproval], dict[str, object]]:
    """The query for an active thread approval that covers the call, and its values."""
    plain, locking = _ACTIVE[call.rule_index is not None]
    thread = call.thread
    values: dict[str, object] = {
        "team_id": thread.team_id,
        "channel_id": thread.channel_id,
        "thread_ts": thread.thread_ts,
        "tool": call.tool_name,
        "rule": call.rule_index,
        "now": now,
    }
    return (locking if lock else plain), values


class RevokeOutcome(StrEnum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"
    ENDED = "ended"  # its time ran out first


@dataclass(frozen=True)
class Revocation:
    thread_approval: ThreadApproval
    outcome: RevokeOutcome


async def revoke(
    db: Database, *, thread_approval_id: str, user_id: str, by: Claimant | None = None
) -> Revocation | None:
    """End the thread approval once; owe its card and every post of a call it let through
    their new look, and the log its entry, in the same transaction."""
    now = utcnow()
    async with db.write() as session:
        result = await session.execute(
            update(ThreadApproval)
            .where(
                col(ThreadApproval.id) == thread_approval_id,
                col(ThreadApproval.revoked_at).is_(None),
                col(ThreadApproval.expires_at) > now,
            )
            .values(revoked_at=now, revoked_by=user_id)
        )
        thread_approval = await session.get(
            ThreadApproval, thread_approval_id, populate_existing=True
        )
        if thread_approval is None:
            return None
        if rowcount(result) != 1:
            ended = thread_approval.revoked_at is None
            outcome = RevokeOutcome.ENDED if ended else RevokeOutcome.ALREADY_REVOKED
            return Revocation(thread_approval, outcome)
        given = await session.get(Approval, thread_approval.approval_id)
        if given is not None:
            await decision_log.record(session, given, kind=DecisionKind.REVOKE, user_id=user_id)
        await _owe_cards(session, thread_approval, given, by)
        return Revocation(thread_approval, RevokeOutcome.REVOKED)


async def _owe_cards(
    session: AsyncSession,
    thread_approval: ThreadApproval,
    given: Approval | None,
    by: Claimant | None,
) -> None:
    ids = list(
        await session.scalars(
            select(col(Approval.id))
            .where(col(Approval.thread_approval_id) == thread_approval.id)
            .order_by(col(Approval.created_at), col(Approval.id))
        )
    )
    if given is not None:
        ids.insert(0, given.id)
    thread = ThreadRef(
        thread_approval.team_id, thread_approval.channel_id, thread_approval.thread_ts
    )
    owed = [Owed(OutboxKind.CARD, approval_id=approval_id) for approval_id in ids]
    await outbox.add(session, thread_key=thread.key, owed=owed, by=by)


async def ended_before(session: AsyncSession, cutoff: datetime, limit: int) -> list[str]:
    """Thread approvals that ended (by time or by a person) before `cutoff`: for retention."""
    rows = await session.scalars(
        select(col(ThreadApproval.id))
        .where(
            or_(
                col(ThreadApproval.expires_at) < cutoff,
                col(ThreadApproval.revoked_at) < cutoff,
            )
        )
        .order_by(col(ThreadApproval.id))
        .limit(limit)
    )
    return list(rows)

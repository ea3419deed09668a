"""Approvals: voted on, decided once by a compare-and-set, and the ledger of approved calls'
starts."""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from storage import audit, decision_log, outbox
from storage.card_views import CardView, card_view_in
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import (
    STATE_UNREAD,
    Approval,
    ApprovalDecision,
    ApprovalStatus,
    AuditEvent,
    DecisionKind,
    Job,
    JobKind,
    JobStatus,
    Run,
    RunStatus,
    utcnow,
)
from storage.outbox import Claimant, Delivery
from storage.statements import insert_unless_taken, rowcount

# A call's start, its outcome and each decision run these: built once, bound each time (see
# storage/statements).
APPROVALS: Table = Approval.__table__  # type: ignore[attr-defined]
_OF_CALL = (
    col(Approval.run_id) == bindparam("of_run"),
    col(Approval.call_id) == bindparam("call"),
)
_START_CALL = (
    update(Approval)
    .where(
        *_OF_CALL,
        col(Approval.status) == ApprovalStatus.APPROVED,
        col(Approval.executed_at).is_(None),
    )
    .values(executed_at=bindparam("at"))
    .returning(Approval)
)
_NEWEST_OF_CALL = (
    select(Approval).where(*_OF_CALL).order_by(col(Approval.generation).desc()).limit(1)
)
_RECORD_OUTCOME = (
    update(Approval).where(*_OF_CALL).values(outcome=bindparam("output")).returning(Approval)
)
_DECIDE = (
    update(APPROVALS)
    .where(
        APPROVALS.c.id == bindparam("approval_id"),
        APPROVALS.c.status == ApprovalStatus.PENDING,
    )
    .values(
        status=bindparam("decision"),
        decided_by=bindparam("by"),
        decided_at=bindparam("at"),
        reason=bindparam("why"),
    )
)
_STILL_PENDING = (
    select(func.count())
    .select_from(APPROVALS)
    .where(
        APPROVALS.c.run_id == bindparam("run_id"),
        APPROVALS.c.generation == bindparam("pause"),
        APPROVALS.c.status == ApprovalStatus.PENDING,
    )
)


async def get_approval(db: Database, approval_id: str) -> Approval | None:
    async with db.read() as session:
        return await session.get(Approval, approval_id)


@dataclass(frozen=True)
class ExecutionClaim:
    """What `claim_execution` found: whether the call may start now; if not, the output its
    earlier start recorded (None when it never recorded one); if so, the arguments an approver
    put in place of the model's, if any (what the tool runs with)."""

    may_run: bool
    recorded: str | None = None
    edited_arguments: str | None = None


async def claim_execution(db: Database, *, run_id: str, call_id: str) -> ExecutionClaim:
    """May this approved call start now? Once per call, whatever resumes the run, however often.

    A call with no approval row is not ours to guard: it runs, with the model's arguments. The
    edited arguments come back with the claim, so the claim still makes the edited call once.
    """
    async with db.write() as session:
        started = await session.scalars(
            _START_CALL, {"of_run": run_id, "call": call_id, "at": utcnow()}
        )
        claimed = sorted(started, key=lambda approval: approval.generation)
        if claimed:
            await audit.append(session, AuditEvent.STARTED, claimed[-1], user=None)
            return ExecutionClaim(True, edited_arguments=claimed[-1].edited_arguments)
        row = await session.scalar(_NEWEST_OF_CALL, {"of_run": run_id, "call": call_id})
        if row is None or row.status != ApprovalStatus.APPROVED:
            return ExecutionClaim(True)
        return ExecutionClaim(False, recorded=row.outcome)


async def record_outcome(db: Database, *, run_id: str, call_id: str, outcome: str) -> None:
    async with db.write() as session:
        recorded = await session.scalars(
            _RECORD_OUTCOME, {"of_run": run_id, "call": call_id, "output": outcome}
        )
        for approval in recorded:
            if approval.executed_at is not None:
                await audit.append(
                    session, AuditEvent.EXECUTED, approval, user=None, output=outcome
                )


@dataclass(frozen=True)
class Decision:
    approval: Approval
    won: bool
    resume_queued: bool
    claimed: list[Delivery] | None = None  # with `claim`: what the thread is owed, claimed


# What each decision is in the log.
_LOGGED_AS = {
    ApprovalStatus.APPROVED: DecisionKind.APPROVE,
    ApprovalStatus.REJECTED: DecisionKind.REJECT,
    ApprovalStatus.EXPIRED: DecisionKind.EXPIRE,
}


async def decide_approval(
    db: Database,
    *,
    approval_id: str,
    run_id: str | None = None,
    status: ApprovalStatus,
    decided_by: str | None,
    reason: str | None = None,
    by: Claimant | None = None,
    claim: bool = False,
) -> Decision | None:
    """Decide a pending approval once, whatever votes it has (a rejection, an expiry); queue
    the resume when it was the run's last one. The card owes the thread its new look, and the
    log its entry, stored with the decision; with `claim`, what the thread is owed is claimed
    for `by` in the same transaction (`outbox.claim_in`). Approvals by people go through
    `vote_to_approve`.
    """
    async with db.write() as session:
        locked = await lock_call(session, approval_id, run_id=run_id)
        if locked is None:
            return None
        approval, run = locked
        decision = await _decide(
            session, approval, run, status=status, decided_by=decided_by, reason=reason, by=by
        )
        if not decision.won:
            return decision
        await decision_log.record(
            session, approval, kind=_LOGGED_AS[status], user_id=decided_by, reason=reason
        )
        if claim:
            approvers = await decision_log.approvers_of(session, approval.id)
            view = await card_view_in(session, approval, approvers)
            return replace(decision, claimed=await _claim(session, view, by))
        return decision


class VoteOutcome(StrEnum):
    COUNTED = "counted"  # a new approval; the call needs more before it runs
    REPEATED = "repeated"  # this person's approval already counted: nothing changed
    DECIDED = "decided"  # this approval completed the quorum: the call is approved
    TOO_LATE = "too_late"  # the call was decided before it: nothing changed


@dataclass(frozen=True)
class Vote:
    approval: Approval
    outcome: VoteOutcome
    approvers: list[str]  # who has approved the call, in order, this vote included
    resume_queued: bool = False
    claimed: list[Delivery] | None = None  # with `claim`: what the thread is owed, claimed


async def vote_to_approve(
    db: Database,
    *,
    approval_id: str,
    run_id: str | None = None,
    user_id: str,
    by: Claimant | None = None,
    claim: bool = False,
) -> Vote | None:
    """One person approves: the vote is logged once, and the vote that brings the distinct
    approvers to `approvals_needed` approves the call, in the same transaction.

    Every vote and decision on a call locks its run's row and then the approval's, so they take
    turns: the vote that completes the quorum sees every vote before it, and two votes can
    never both see themselves one short and leave a call with enough approvals pending. The
    approval itself is still the compare-and-set on `status = 'pending'`. A vote that does not
    complete the quorum owes the thread the card's new count. With `claim`, what a vote that
    changed something owes is claimed for `by` in the same transaction.
    """
    async with db.write() as session:
        locked = await lock_call(session, approval_id, run_id=run_id)
        if locked is None:
            return None
        approval, run = locked
        if approval.status != ApprovalStatus.PENDING:
            approvers = await decision_log.approvers_of(session, approval.id)
            return Vote(approval, VoteOutcome.TOO_LATE, approvers)
        vote = await _vote(session, approval, run, user_id=user_id, by=by)
        if claim and vote.outcome in (VoteOutcome.COUNTED, VoteOutcome.DECIDED):
            view = await card_view_in(session, vote.approval, vote.approvers)
            return replace(vote, claimed=await _claim(session, view, by))
        return vote


async def _vote(
    session: AsyncSession,
    approval: Approval,
    run: Run | None,
    *,
    user_id: str,
    by: Claimant | None,
) -> Vote:
    """Count a vote on a pending call, under the caller's locks."""
    counted = await decision_log.record(
        session, approval, kind=DecisionKind.APPROVE, user_id=user_id
    )
    approvers = await decision_log.approvers_of(session, approval.id)
    if not counted:
        return Vote(approval, VoteOutcome.REPEATED, approvers)
    if len(approvers) < approval.approvals_needed:
        await _owe_card(session, approval, by)
        return Vote(approval, VoteOutcome.COUNTED, approvers)
    decision = await _decide(
        session, approval, run, status=ApprovalStatus.APPROVED, decided_by=user_id, by=by
    )
    outcome = VoteOutcome.DECIDED if decision.won else VoteOutcome.TOO_LATE
    return Vote(decision.approval, outcome, approvers, decision.resume_queued)


@dataclass(frozen=True)
class Requirement:
    """What an edited call needs, when it needs more than before: who, how many, which rule."""

    approvers: list[str]
    approvals_needed: int
    rule_index: int | None
    rule_label: str | None
    allow_edit: bool


class EditOutcome(StrEnum):
    EDITED = "edited"  # the arguments are replaced; the card is owed its new look
    TOO_LATE = "too_late"  # the call was decided before the edit: nothing changed
    VOTED = "voted"  # someone already approved the arguments as they were: nothing changed


@dataclass(frozen=True)
class Edit:
    approval: Approval
    outcome: EditOutcome
    approvers: list[str]  # who has approved the call
    vote: Vote | None = None  # the editor's approval, when it was to count


async def edit_arguments(
    db: Database,
    *,
    approval_id: str,
    run_id: str | None = None,
    user_id: str,
    arguments: str,
    requirement: Requirement | None,
    vote: bool,
    by: Claimant | None = None,
) -> Edit | None:
    """Replace a pending call's arguments (and, with `requirement`, what it needs), log the
    edit, count the editor's approval when `vote` says it counts, and owe the card: one
    transaction under the same locks as votes, so no other edit comes between the edit and the
    editor's approval of it.

    An approval is of the arguments its approver saw, so a call somebody already approved is
    not edited: the vote would otherwise carry over to arguments nobody approved.
    """
    async with db.write() as session:
        locked = await lock_call(session, approval_id, run_id=run_id)
        if locked is None:
            return None
        approval, run = locked
        approvers = await decision_log.approvers_of(session, approval.id)
        if approval.status != ApprovalStatus.PENDING:
            return Edit(approval, EditOutcome.TOO_LATE, approvers)
        if approvers:
            return Edit(approval, EditOutcome.VOTED, approvers)
        approval.edited_arguments = arguments
        if requirement is not None:
            approval.approvers = list(requirement.approvers)
            approval.approvals_needed = requirement.approvals_needed
            approval.rule_index = requirement.rule_index
            approval.rule_label = requirement.rule_label
            approval.allow_edit = requirement.allow_edit
        await decision_log.record(session, approval, kind=DecisionKind.EDIT, user_id=user_id)
        await session.flush()
        if vote:
            counted = await _vote(session, approval, run, user_id=user_id, by=by)
            return Edit(counted.approval, EditOutcome.EDITED, counted.approvers, counted)
        await _owe_card(session, approval, by)
        return Edit(approval, EditOutcome.EDITED, [])


async def lock_call(
    session: AsyncSession, approval_id: str, *, run_id: str | None = None
) -> tuple[Approval, Run | None] | None:
    """Lock the call's run, then the approval (always in that order), and read the approval
    anew: every change to a waiting call takes these locks, so they take turns. A caller that
    read the approval before passes its `run_id` (a call never moves to another run), which
    spares the read that finds it. None when the approval is gone."""
    if run_id is None:
        found = await session.get(Approval, approval_id)
        if found is None:
            return None
        run_id = found.run_id
    # The paused state is what a resume reads: a change to the call leaves it unread.
    run = await session.get(Run, run_id, with_for_update=True, options=[STATE_UNREAD])
    approval = await session.get(
        Approval, approval_id, with_for_update=True, populate_existing=True
    )
    if approval is None or approval.run_id != run_id:
        return None
    return approval, run


async def _claim(session: AsyncSession, view: CardView, by: Claimant | None) -> list[Delivery]:
    if by is None:
        raise ValueError("a claim needs somebody to deliver what it takes")
    approval = view.approval
    thread_key = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key
    return await outbox.claim_in(session, thread_key=thread_key, by=by, current=[view])


async def _owe_card(session: AsyncSession, approval: Approval, by: Claimant | None) -> None:
    card = outbox.card_of(approval)
    thread_key = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key
    await outbox.add(session, thread_key=thread_key, owed=[card], by=by)


async def _decide(
    session: AsyncSession,
    approval: Approval,
    run: Run | None,
    *,
    status: ApprovalStatus,
    decided_by: str | None,
    reason: str | None = None,
    by: Claimant | None,
) -> Decision:
    """The compare-and-set, under the caller's locks; the run's last decision queues its
    resume, so that two approvals of one run decided at once cannot both see the other still
    pending and leave the run waiting forever."""
    decided = {"status": status, "decided_by": decided_by, "decided_at": utcnow(), "reason": reason}
    result = await session.execute(
        _DECIDE,
        {
            "approval_id": approval.id,
            "decision": status,
            "by": decided_by,
            "at": decided["decided_at"],
            "why": reason,
        },
    )
    won = rowcount(result) == 1
    if won:  # the row is what was read under the lock plus what was just written
        for key, value in decided.items():
            set_committed_value(approval, key, value)
    else:
        await session.refresh(approval)
    if won:
        await _owe_card(session, approval, by)
    if not won or run is None or run.status != RunStatus.WAITING:
        return Decision(approval=approval, won=won, resume_queued=False)
    still_pending = await session.scalar(
        _STILL_PENDING, {"run_id": run.id, "pause": run.generation}
    )
    if still_pending:
        return Decision(approval=approval, won=True, resume_queued=False)
    run.status = RunStatus.RESUMING
    run.updated_at = utcnow()
    await insert_unless_taken(
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


async def pending_not_approved_by(
    db: Database, *, team_id: str, user_id: str, now: datetime, limit: int
) -> list[Approval]:
    """The team's calls still waiting (and not yet due to expire) that this person has not
    approved, soonest to expire first, at most `limit`: what someone might still decide."""
    voted = select(col(ApprovalDecision.id)).where(
        col(ApprovalDecision.approval_id) == col(Approval.id),
        col(ApprovalDecision.user_id) == user_id,
        col(ApprovalDecision.kind) == DecisionKind.APPROVE,
    )
    async with db.read() as session:
        rows = await session.scalars(
            select(Approval)
            .where(
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.expires_at) > now,
                col(Approval.team_id) == team_id,
                ~voted.exists(),
            )
            .order_by(col(Approval.expires_at), col(Approval.id))
            .limit(limit)
        )
        return list(rows)


async def count_pending(db: Database) -> int:
    """Approval requests waiting for a decision, whichever process posted them (metrics)."""
    async with db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Approval)
            .where(col(Approval.status) == ApprovalStatus.PENDING)
        )
    return int(count or 0)

"""Reminders and escalation of a waiting call: each step is taken once, whoever sweeps.

A step is due when its time (`remind_at`, `escalate_at`) has passed and the call still waits,
before it expires. Taking it is a compare-and-set on its `…ed_at` column under the call's
locks (the same as votes take), in the transaction that stores the messages it owes: two
processes sweeping at once cannot both remind, and a vote committed first is seen, so its
voter is not reminded. The audit log records the step, and whom it told, in that transaction.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from storage import audit, decision_log, outbox
from storage.approvals import lock_call
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, ApprovalStatus, AuditEvent, OutboxKind
from storage.outbox import Claimant, Owed
from storage.statements import rowcount


class Step(StrEnum):
    REMIND = "remind"
    ESCALATE = "escalate"


_DUE = {Step.REMIND: "remind_at", Step.ESCALATE: "escalate_at"}
_TAKEN = {Step.REMIND: "reminded_at", Step.ESCALATE: "escalated_at"}
_AUDITED = {Step.REMIND: AuditEvent.REMINDED, Step.ESCALATE: AuditEvent.ESCALATED}


def _column(name: str) -> Any:
    return col(getattr(Approval, name))


# Whom a step tells, from the call as it stands under the locks and who has approved it so far.
Recipients = Callable[[Approval, Sequence[str]], Sequence[str]]


async def due_ids(db: Database, step: Step, *, now: datetime, limit: int = 100) -> list[str]:
    """Waiting calls whose step is due; one that is due to expire as well just expires."""
    due, taken = _column(_DUE[step]), _column(_TAKEN[step])
    async with db.read() as session:
        rows = await session.scalars(
            select(col(Approval.id))
            .where(
                col(Approval.status) == ApprovalStatus.PENDING,
                due <= now,
                taken.is_(None),
                col(Approval.expires_at) > now,
            )
            .order_by(due)
            .limit(limit)
        )
        return list(rows)


def reminder(approval_id: str, to: str, step: Step) -> Owed:
    return Owed(OutboxKind.REMINDER, {"to": to, "step": str(step)}, approval_id=approval_id)


async def take(
    db: Database,
    step: Step,
    *,
    approval_id: str,
    now: datetime,
    recipients: Recipients,
    by: Claimant,
) -> tuple[Approval, list[str]] | None:
    """Take the step once: None when it was not ours to take (taken already, the call was
    decided). Otherwise the call, and whom it owes a reminder, stored with the step."""
    async with db.write() as session:
        locked = await lock_call(session, approval_id)
        if locked is None:
            return None
        approval, _run = locked
        result = await session.execute(
            update(Approval)
            .where(
                col(Approval.id) == approval_id,
                col(Approval.status) == ApprovalStatus.PENDING,
                _column(_TAKEN[step]).is_(None),
            )
            .values({_TAKEN[step]: now})
        )
        if rowcount(result) != 1:
            return None
        await session.refresh(approval)
        voted = await decision_log.approvers_of(session, approval.id)
        told = list(dict.fromkeys(recipients(approval, voted)))
        owed = [reminder(approval.id, to, step) for to in told]
        if step == Step.ESCALATE:  # the card names whom it was escalated to
            owed.append(outbox.card_of(approval))
        thread_key = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key
        await outbox.add(session, thread_key=thread_key, owed=owed, by=by)
        await audit.append(session, _AUDITED[step], approval, user=None, detail=", ".join(told))
        return approval, told

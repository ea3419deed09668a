"""What a card shows: the call, who approved it, and the thread approval it speaks of.

A card is rendered on every delivery of it. A change that holds all three already (a vote, a
pause) hands them to its delivery with the claim (`outbox.claim_in`); any other delivery reads
them here, in one transaction."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.database import Database
from storage.decision_log import approvers_of
from storage.models import Approval, ThreadApproval


@dataclass(frozen=True)
class CardView:
    approval: Approval
    approved_by: list[str]
    thread_approval: ThreadApproval | None


async def card_view(db: Database, approval_id: str) -> CardView | None:
    """None when the approval is gone (retention removed it)."""
    async with db.read() as session:
        approval = await session.get(Approval, approval_id)
        if approval is None:
            return None
        return await card_view_in(session, approval, await approvers_of(session, approval.id))


async def card_view_in(
    session: AsyncSession, approval: Approval, approved_by: list[str]
) -> CardView:
    """The view of an approval this transaction holds, with its approvers as read in it."""
    thread_approval = (
        await _thread_approval_of(session, approval)
        if approval.allow_for_thread or approval.thread_approval_id
        else None
    )
    return CardView(approval, approved_by, thread_approval)


async def _thread_approval_of(session: AsyncSession, approval: Approval) -> ThreadApproval | None:
    """The one this call ran under, or the one its approval gave."""
    if approval.thread_approval_id is not None:
        return await session.get(ThreadApproval, approval.thread_approval_id)
    return await session.scalar(
        select(ThreadApproval).where(col(ThreadApproval.approval_id) == approval.id).limit(1)
    )

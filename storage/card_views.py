"""What a card shows, read in one transaction: the call, who approved it, and the thread
approval it speaks of. A card is rendered on every delivery of it, so this is one round trip
instead of one per part."""

from dataclasses import dataclass

from storage.database import Database
from storage.decision_log import approvers_of
from storage.models import Approval, ThreadApproval
from storage.thread_approvals import thread_approval_of


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
        approved_by = await approvers_of(session, approval.id)
        thread_approval = (
            await thread_approval_of(session, approval)
            if approval.allow_for_thread or approval.thread_approval_id
            else None
        )
        return CardView(approval, approved_by, thread_approval)

"""An approval's card as it stands: the request with its buttons, or the decision.

`approved_by` is who has approved the call so far, from the decision log, in order.
"""

from collections.abc import Sequence
from datetime import timedelta

from bot.slack import blocks, thread_blocks
from storage.models import Approval, ApprovalStatus, ThreadApproval, utcnow
from storage.runs import requesters_of


def view_of(approval: Approval, approved_by: Sequence[str]) -> blocks.ApprovalView:
    return blocks.ApprovalView(
        approval_id=approval.id,
        tool_name=approval.tool_name,
        arguments=approval.arguments,
        requesters=requesters_of(approval),
        approvers=approval.approvers,
        approvals_needed=approval.approvals_needed,
        approved_by=tuple(approved_by),
        rule_label=approval.rule_label,
        # A quorum is never offered one (the config refuses it); checked again on the row.
        allow_for_thread=bool(approval.allow_for_thread) and approval.approvals_needed == 1,
        thread_approval_ttl=(
            timedelta(seconds=approval.thread_approval_ttl_seconds)
            if approval.thread_approval_ttl_seconds
            else None
        ),
        allow_edit=bool(approval.allow_edit),
        edited_arguments=approval.edited_arguments,
        escalated_to=tuple(approval.escalate_to or ()) if approval.escalated_at else (),
    )


def decision_of(approval: Approval, approved_by: Sequence[str]) -> blocks.DecisionView:
    return blocks.DecisionView(
        status=str(approval.status),
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        reason=approval.reason,
        outcome=approval.outcome,
        approved_by=tuple(approved_by),
        approvals_needed=approval.approvals_needed,
    )


def card(
    approval: Approval,
    approved_by: Sequence[str],
    thread_approval: ThreadApproval | None = None,
) -> tuple[str, list[blocks.Block]]:
    """`thread_approval` is the one this call ran under (its card is the auto-approved post),
    or the one its approval gave (shown under the decision, with Revoke while in force)."""
    view = view_of(approval, approved_by)
    now = utcnow()
    if approval.thread_approval_id is not None and thread_approval is not None:
        return thread_blocks.auto_approved(view, thread_approval, approval.outcome, now)
    if approval.status == ApprovalStatus.PENDING:
        return blocks.approval_request(view)
    text, body = blocks.approval_decided(view, decision_of(approval, approved_by))
    if thread_approval is not None:
        body = thread_blocks.with_thread_approval(body, thread_approval, approval.tool_name, now)
    return text, body

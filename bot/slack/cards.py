"""An approval's card as it stands: the request with its buttons, or the decision.

`approved_by` is who has approved the call so far, from the decision log, in order.
"""

from collections.abc import Sequence

from bot.slack import blocks
from storage.models import Approval, ApprovalStatus
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
        allow_edit=bool(approval.allow_edit),
        edited_arguments=approval.edited_arguments,
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


def card(approval: Approval, approved_by: Sequence[str]) -> tuple[str, list[blocks.Block]]:
    view = view_of(approval, approved_by)
    if approval.status == ApprovalStatus.PENDING:
        return blocks.approval_request(view)
    return blocks.approval_decided(view, decision_of(approval, approved_by))

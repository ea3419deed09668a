"""An approval's card as it stands: the request with its buttons, or the decision."""

from bot.slack import blocks
from storage.models import Approval, ApprovalStatus
from storage.runs import requesters_of


def view_of(approval: Approval) -> blocks.ApprovalView:
    return blocks.ApprovalView(
        approval_id=approval.id,
        tool_name=approval.tool_name,
        arguments=approval.arguments,
        requesters=requesters_of(approval),
        approvers=approval.approvers,
        rule_label=approval.rule_label,
    )


def decision_of(approval: Approval) -> blocks.DecisionView:
    return blocks.DecisionView(
        status=str(approval.status),
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        reason=approval.reason,
        outcome=approval.outcome,
    )


def card(approval: Approval) -> tuple[str, list[blocks.Block]]:
    if approval.status == ApprovalStatus.PENDING:
        return blocks.approval_request(view_of(approval))
    return blocks.approval_decided(view_of(approval), decision_of(approval))

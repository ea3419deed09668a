"""What a thread approval looks like: the line on the card that gave it, and the post of each
call it let through without a card. Pure; the same escaping and limits as every card."""

from datetime import datetime

from bot.slack.blocks import (
    ARGUMENTS_LIMIT,
    FALLBACK_TEXT_LIMIT,
    ApprovalView,
    Block,
    _code,
    _context,
    _section,
    escape,
    mention,
    pretty_arguments,
    revoke_button,
    rule_line,
    slack_date,
    truncate,
)
from storage.models import ThreadApproval


def is_active(thread_approval: ThreadApproval, now: datetime) -> bool:
    return thread_approval.revoked_at is None and thread_approval.expires_at > now


def status_line(thread_approval: ThreadApproval, tool_name: str, now: datetime) -> str:
    """Where the thread approval stands as the message is drawn: in force, revoked, or over."""
    if thread_approval.revoked_at is not None:
        who = mention(thread_approval.revoked_by) if thread_approval.revoked_by else "somebody"
        return (
            f":no_entry_sign: Thread approval revoked by {who} on "
            f"{slack_date(thread_approval.revoked_at)}: later calls need a card again."
        )
    if thread_approval.expires_at <= now:
        return f":hourglass: Thread approval ended on {slack_date(thread_approval.expires_at)}."
    return (
        f":repeat: Approved for this thread by {mention(thread_approval.approved_by)} until "
        f"{slack_date(thread_approval.expires_at)}: later `{escape(tool_name, 200)}` calls here "
        "that the same rule governs run without a card."
    )


def revoke_actions(thread_approval: ThreadApproval) -> Block:
    return {
        "type": "actions",
        "block_id": f"thread_approval:{thread_approval.id}"[:255],
        "elements": [revoke_button(thread_approval.id)],
    }


def with_thread_approval(
    body: list[Block], thread_approval: ThreadApproval, tool_name: str, now: datetime
) -> list[Block]:
    """The card that gave the thread approval, with where it stands and, while it is in
    force, the Revoke button."""
    extra = [_section(status_line(thread_approval, tool_name, now))]
    if is_active(thread_approval, now):
        extra.append(revoke_actions(thread_approval))
    return [*body, *extra]


def auto_approved(
    view: ApprovalView, thread_approval: ThreadApproval, outcome: str | None, now: datetime
) -> tuple[str, list[Block]]:
    """The post of a call that ran under a thread approval: what ran, under whose approval,
    and the Revoke button while the approval is in force."""
    tool = escape(view.tool_name, 200)
    who = mention(thread_approval.approved_by)
    text = f"{tool}: auto-approved under {who}'s thread approval"
    body: list[Block] = [
        _section(f":white_check_mark: `{tool}` auto-approved under {who}'s thread approval"),
        _section("*Arguments*\n" + _code(pretty_arguments(view.arguments), ARGUMENTS_LIMIT)),
    ]
    if view.rule_label:
        body.append(_context(rule_line(view.rule_label, view.approvers)))
    if outcome is not None:
        body.append(_section(_code(outcome, 1200)))
    if thread_approval.revoked_at is not None or thread_approval.expires_at <= now:
        body.append(_section(status_line(thread_approval, view.tool_name, now)))
    else:
        body.append(revoke_actions(thread_approval))
    return truncate(text, FALLBACK_TEXT_LIMIT), body

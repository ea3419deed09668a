"""Block Kit builders. Pure, and always within Slack's limits whatever the tool's arguments."""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

APPROVE_ACTION = "threadgate_approve"
REJECT_ACTION = "threadgate_reject"
REJECT_VIEW = "threadgate_reject_reason"
RETRY_ACTION = "threadgate_retry"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"

SECTION_LIMIT = 3000
ARGUMENTS_LIMIT = 2500
FALLBACK_TEXT_LIMIT = 3000
REASON_LIMIT = 2000
BUTTON_VALUE_LIMIT = 2000

Block = dict[str, Any]


@dataclass(frozen=True)
class ApprovalView:
    """What a person needs to see to decide one call."""

    approval_id: str
    tool_name: str
    arguments: str
    requesters: Sequence[str]
    approvers: Sequence[str]


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"… ({len(text) - limit} more characters)"
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


def pretty_arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False, sort_keys=True)
    except (ValueError, TypeError):
        return arguments


def mention(slack_id: str) -> str:
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def slack_date(moment: datetime) -> str:
    epoch = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _code(text: str, limit: int) -> str:
    """A code block the content cannot close: no two backticks stay next to each other."""
    safe = truncate(re.sub(r"`(?=`)", "`\u200b", text), limit)
    if safe.endswith("`") or safe.startswith("`"):
        safe = "\u200b" + safe + "\u200b"
    return "```" + safe + "```"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 3000)}]}


def _mentions(ids: Sequence[str], limit: int = 20) -> str:
    return ", ".join(mention(i) for i in ids[:limit]) + (
        f" and {len(ids) - limit} more" if len(ids) > limit else ""
    )


def _who_decides(approvers: Sequence[str]) -> str:
    if not approvers:
        return "nobody is configured to approve this tool"
    return _mentions(approvers)


def _call_blocks(view: ApprovalView) -> list[Block]:
    return [
        _section(f":lock: *Approval needed* to run `{truncate(view.tool_name, 200)}`"),
        _section("*Arguments*\n" + _code(pretty_arguments(view.arguments), ARGUMENTS_LIMIT)),
        _context(
            f"Asked by {_mentions(view.requesters) or 'nobody known'} · Who may decide: "
            f"{_who_decides(view.approvers)}"
        ),
    ]


def approval_request(view: ApprovalView) -> tuple[str, list[Block]]:
    """The message for one pending call: its arguments next to its own buttons."""
    text = f"Approval needed to run {view.tool_name}"
    actions: Block = {
        "type": "actions",
        "block_id": f"approval:{view.approval_id}"[:255],
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "style": "primary",
                "value": view.approval_id,
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": {"type": "plain_text", "text": "Reject…", "emoji": True},
                "style": "danger",
                "value": view.approval_id,
            },
        ],
    }
    return truncate(text, FALLBACK_TEXT_LIMIT), [*_call_blocks(view), actions]


@dataclass(frozen=True)
class DecisionView:
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None = None
    outcome: str | None = None


def decision_line(decision: DecisionView) -> str:
    when = f" on {slack_date(decision.decided_at)}" if decision.decided_at else ""
    who = mention(decision.decided_by) if decision.decided_by else "nobody"
    if decision.status == "approved":
        return f":white_check_mark: Approved by {who}{when}"
    if decision.status == "rejected":
        reason = decision.reason or "no reason given"
        return f":no_entry: Rejected by {who}{when}: {truncate(reason, REASON_LIMIT)}"
    if decision.status == "expired":
        return f":hourglass: Expired{when}: nobody decided in time"
    return f"Pending since{when}"


def approval_decided(view: ApprovalView, decision: DecisionView) -> tuple[str, list[Block]]:
    """The same message after a decision: buttons gone, who decided, and what happened."""
    line = decision_line(decision)
    if decision.outcome is not None:
        line += "\n" + _code(decision.outcome, 1200)
    elif decision.status == "approved":
        line += " — running…"
    return truncate(f"{view.tool_name}: {decision.status}", FALLBACK_TEXT_LIMIT), [
        *_call_blocks(view),
        _section(line),
    ]


def reject_modal(approval_id: str, tool_name: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": approval_id,
        "title": {"type": "plain_text", "text": "Reject tool call"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(f"Reject the call to `{truncate(tool_name, 200)}`?"),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (the agent will see it)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": REASON_LIMIT,
                },
            },
        ],
    }


def plain(text: str) -> tuple[str, list[Block]]:
    """Plain text both as fallback and as one section, safe at any length."""
    return truncate(text, FALLBACK_TEXT_LIMIT), [_section(text)]


def answer_chunks(text: str, *, limit: int = SECTION_LIMIT, max_blocks: int = 50) -> list[Block]:
    """A long answer as several sections, so nothing is cut until Slack's block limit."""
    text = text or "(empty answer)"
    chunks = [text[i : i + limit] for i in range(0, len(text), limit)]
    if len(chunks) > max_blocks:
        chunks = [*chunks[: max_blocks - 1], truncate(text[(max_blocks - 1) * limit :], limit)]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]


@dataclass(frozen=True)
class InFlightCall:
    tool_name: str
    arguments: str


def interrupted_note(
    *, run_id: str, what: str, in_flight: Sequence[InFlightCall], ref: str, can_retry: bool
) -> tuple[str, list[Block]]:
    """Tell the thread a run stopped half-way, what may have happened, and offer a retry."""
    lines = [f":warning: {what} Reference: `{ref}`."]
    for call in in_flight[:10]:
        lines.append(
            f"• `{truncate(call.tool_name, 200)}` was approved and may or may not have run: "
            "its result was never recorded.\n" + _code(pretty_arguments(call.arguments), 400)
        )
    if can_retry:
        lines.append("A person who asked or an approver can retry it.")
    body: list[Block] = [_section("\n".join(lines))]
    if can_retry:
        body.append(
            {
                "type": "actions",
                "block_id": f"retry:{run_id}"[:255],
                "elements": [
                    {
                        "type": "button",
                        "action_id": RETRY_ACTION,
                        "text": {"type": "plain_text", "text": "Retry", "emoji": True},
                        "value": run_id,
                    }
                ],
            }
        )
    return truncate(f"{what} Reference: {ref}", FALLBACK_TEXT_LIMIT), body

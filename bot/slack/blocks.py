"""Block Kit builders. Pure, and always within Slack's limits whatever the tool's arguments.

Every string a model, a tool or a person wrote goes through `escape` here before it reaches
`mrkdwn` or a message's `text`, so `<!channel>`, `<@U…>` and `<https://…|Log in>` arrive as
the characters they are. The only `<…>` the bot sends are its own: mentions of approvers,
deciders and requesters, and dates. Limits count the escaped text, as Slack does.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.slack import markdown
from bot.slack.mrkdwn import FALLBACK_TEXT_LIMIT as FALLBACK_TEXT_LIMIT
from bot.slack.mrkdwn import escape as escape
from bot.slack.mrkdwn import truncate as truncate

APPROVE_ACTION = "threadgate_approve"
APPROVE_THREAD_ACTION = "threadgate_approve_thread"
REVOKE_THREAD_ACTION = "threadgate_revoke_thread_approval"
REJECT_ACTION = "threadgate_reject"
REJECT_VIEW = "threadgate_reject_reason"
EDIT_ACTION = "threadgate_edit"
EDIT_VIEW = "threadgate_edit_arguments"
ARGUMENT_INPUT = "value"
RETRY_ACTION = "threadgate_retry"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"

SECTION_LIMIT = 3000
ARGUMENTS_LIMIT = 2500
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
    approvals_needed: int = 1
    approved_by: Sequence[str] = ()  # who has approved so far, in order
    # What decided the call needs approval ("rule 1: amount > 1000 → 2 approvals"): plain
    # text from the config, escaped here like anything else that is not ours.
    rule_label: str | None = None
    # Offer "Approve for this thread", for this long (as the call's policy said when it paused).
    allow_for_thread: bool = False
    thread_approval_ttl: timedelta | None = None
    allow_edit: bool = False  # offer "Edit…"
    # What an approver changed the arguments to: what runs, shown next to what the model asked.
    edited_arguments: str | None = None
    # Whom the call was escalated to, once it was: they may decide it too.
    escalated_to: Sequence[str] = ()


_SLACK_ID = re.compile(r"[A-Z0-9]{2,40}")


def is_slack_id(value: str) -> bool:
    return bool(_SLACK_ID.fullmatch(value))


def pretty_arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False, sort_keys=True)
    except (ValueError, TypeError):
        return arguments


def mention(slack_id: str) -> str:
    """Our own mentions; anything that is not a Slack id is shown as text."""
    if not _SLACK_ID.fullmatch(slack_id):
        return escape(slack_id, 100)
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def slack_date(moment: datetime) -> str:
    epoch = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _code(text: str, limit: int) -> str:
    """A code block the content cannot close: no two backticks stay next to each other, and
    nothing at its edges can join our fences. Slack still reads `<…>` and `&` inside one."""
    safe = escape(re.sub(r"`(?=`)", "`\u200b", text), limit)
    if safe.endswith("`") or safe.startswith("`"):
        safe = "\u200b" + safe + "\u200b"
    return "```" + safe + "```"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 3000)}]}


def mentions(ids: Sequence[str], limit: int = 20) -> str:
    return _mentions(ids, limit)


def _mentions(ids: Sequence[str], limit: int = 20) -> str:
    return ", ".join(mention(i) for i in ids[:limit]) + (
        f" and {len(ids) - limit} more" if len(ids) > limit else ""
    )


def _who_decides(approvers: Sequence[str]) -> str:
    if not approvers:
        return "nobody is configured to approve this tool"
    return _mentions(approvers)


def _each(ids: Sequence[str], limit: int = 20) -> str:
    """`<@a>`, `<@a> and <@b>`, `<@a>, <@b> and <@c>`."""
    shown = [mention(i) for i in ids[:limit]]
    if len(shown) <= 1:
        return "".join(shown)
    if len(ids) > limit:
        return ", ".join(shown) + f" and {len(ids) - limit} more"
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def quorum_line(approved_by: Sequence[str], needed: int) -> str:
    """How far a call that needs several approvers has come: "1 of 2 approvals: <@a>"."""
    return f"{len(approved_by)} of {needed} approvals: {_each(approved_by)}"


RULE_LABEL_LIMIT = 1000


def rule_line(label: str, approvers: Sequence[str]) -> str:
    """ "rule 1: amount > 1000 → 2 approvals from @finance": the label as text, then the
    approvers it named as our own mentions."""
    line = f":scroll: {escape(label, RULE_LABEL_LIMIT)}"
    return line + (f" from {_mentions(approvers)}" if approvers else "")


def _call_blocks(view: ApprovalView) -> list[Block]:
    needed = f" · {view.approvals_needed} approvals needed" if view.approvals_needed > 1 else ""
    arguments = [
        _section("*Arguments*\n" + _code(pretty_arguments(view.arguments), ARGUMENTS_LIMIT))
    ]
    if view.edited_arguments is not None:
        arguments = [
            _section(
                "*Arguments the model asked for*\n"
                + _code(pretty_arguments(view.arguments), ARGUMENTS_LIMIT)
            ),
            _section(
                "*Arguments as edited by an approver* (these are what run)\n"
                + _code(pretty_arguments(view.edited_arguments), ARGUMENTS_LIMIT)
            ),
        ]
    blocks = [
        _section(f":lock: *Approval needed* to run `{escape(view.tool_name, 200)}`"),
        *arguments,
        _context(
            f"Asked by {_mentions(view.requesters) or 'nobody known'} · Who may decide: "
            f"{_who_decides(view.approvers)}{needed}"
        ),
    ]
    if view.rule_label:
        blocks.append(_context(rule_line(view.rule_label, view.approvers)))
    if view.escalated_to:
        blocks.append(
            _context(
                f":rotating_light: Escalated to {_mentions(view.escalated_to)}, "
                "who may decide it too"
            )
        )
    return blocks


def approval_request(view: ApprovalView) -> tuple[str, list[Block]]:
    """The message for one pending call: its arguments next to its own buttons."""
    text = f"Approval needed to run {escape(view.tool_name, 200)}"
    actions = approval_actions(view)
    so_far = ":ballot_box_with_check: " + quorum_line(view.approved_by, view.approvals_needed)
    votes = [_section(so_far)] if view.approved_by else []
    offer = [_context(_thread_offer(view))] if view.allow_for_thread else []
    return truncate(text, FALLBACK_TEXT_LIMIT), [*_call_blocks(view), *votes, actions, *offer]


def code(text: str, limit: int) -> str:
    """Untrusted text as a code block of at most about `limit` characters."""
    return _code(text, limit)


def approval_actions(view: ApprovalView) -> Block:
    """A pending call's buttons, wherever it is shown (its card, the App Home): the same
    action ids, so every copy is decided by the same handlers."""
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
            *([_approve_thread_button(view.approval_id)] if view.allow_for_thread else []),
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": {"type": "plain_text", "text": "Reject…", "emoji": True},
                "style": "danger",
                "value": view.approval_id,
            },
        ],
    }
    if view.allow_edit:
        actions["elements"].append(
            {
                "type": "button",
                "action_id": EDIT_ACTION,
                "text": {"type": "plain_text", "text": "Edit…", "emoji": True},
                "value": view.approval_id,
            }
        )
    return actions


def _approve_thread_button(approval_id: str) -> Block:
    return {
        "type": "button",
        "action_id": APPROVE_THREAD_ACTION,
        "text": {"type": "plain_text", "text": "Approve for this thread", "emoji": True},
        "value": approval_id,
    }


def duration(span: timedelta) -> str:
    """ "8 hours", "90 minutes", "2 days": how long a thread approval lasts, as people say it."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _thread_offer(view: ApprovalView) -> str:
    how_long = f" for {duration(view.thread_approval_ttl)}" if view.thread_approval_ttl else ""
    return (
        f"_Approve for this thread_ also lets later `{escape(view.tool_name, 200)}` calls in "
        f"this thread that the same rule governs run without a card{how_long}, until revoked."
    )


def revoke_button(thread_approval_id: str) -> Block:
    return {
        "type": "button",
        "action_id": REVOKE_THREAD_ACTION,
        "text": {"type": "plain_text", "text": "Revoke", "emoji": True},
        "style": "danger",
        "value": thread_approval_id,
    }


@dataclass(frozen=True)
class DecisionView:
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None = None
    outcome: str | None = None
    approved_by: Sequence[str] = ()  # who approved, in order (empty before quorums existed)
    approvals_needed: int = 1


def decision_line(decision: DecisionView) -> str:
    when = f" on {slack_date(decision.decided_at)}" if decision.decided_at else ""
    who = mention(decision.decided_by) if decision.decided_by else "nobody"
    so_far = (
        f" with {len(decision.approved_by)} of {decision.approvals_needed} approvals "
        f"({_each(decision.approved_by)})"
        if decision.approved_by
        else ""
    )
    if decision.status == "approved":
        approvers = _each(decision.approved_by) if decision.approved_by else who
        return f":white_check_mark: Approved by {approvers}{when}"
    if decision.status == "rejected":
        reason = escape(decision.reason, REASON_LIMIT) if decision.reason else "no reason given"
        return f":no_entry: Rejected by {who}{when}{so_far}: {reason}"
    if decision.status == "expired":
        return f":hourglass: Expired{when}{so_far}: nobody decided in time"
    return f"Pending since{when}"


def approval_decided(view: ApprovalView, decision: DecisionView) -> tuple[str, list[Block]]:
    """The same message after a decision: buttons gone, who decided, and what happened."""
    line = decision_line(decision)
    if decision.outcome is not None:
        line += "\n" + _code(decision.outcome, 1200)
    elif decision.status == "approved":
        line += " — running…"
    return f"{escape(view.tool_name, 200)}: {decision.status}", [
        *_call_blocks(view),
        _section(line),
    ]


# Ends a modal's `private_metadata` when it was opened from the App Home: its submission has
# no channel to answer in either, so what it is told goes by direct message.
FROM_HOME = ":home"


def modal_metadata(approval_id: str, *, from_home: bool) -> str:
    return approval_id + (FROM_HOME if from_home else "")


def reject_modal(approval_id: str, tool_name: str, *, from_home: bool = False) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": modal_metadata(approval_id, from_home=from_home),
        "title": {"type": "plain_text", "text": "Reject tool call"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(f"Reject the call to `{escape(tool_name, 200)}`?"),
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


@dataclass(frozen=True)
class ArgumentField:
    block_id: str
    name: str
    value: str


def edit_modal(
    approval_id: str,
    tool_name: str,
    fields: Sequence[ArgumentField],
    *,
    from_home: bool = False,
) -> dict[str, Any]:
    """One input per argument, prefilled; optional, so an empty string can be submitted (and
    a value left empty where JSON is expected is an error the bot shows, not Slack)."""
    inputs: list[Block] = []
    for field in fields:
        element: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": ARGUMENT_INPUT,
            "multiline": True,
        }
        if field.value:
            element["initial_value"] = field.value
        inputs.append(
            {
                "type": "input",
                "block_id": field.block_id,
                "optional": True,
                "label": {"type": "plain_text", "text": field.name[:2000]},
                "element": element,
            }
        )
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": modal_metadata(approval_id, from_home=from_home),
        "title": {"type": "plain_text", "text": "Edit tool call"},
        "submit": {"type": "plain_text", "text": "Save and approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(
                f"Edit the arguments of `{escape(tool_name, 200)}`, then approve. Text is taken "
                "as it is where the tool expects a string; anything else is read as JSON."
            ),
            *inputs,
        ],
    }


def plain(text: str) -> tuple[str, list[Block]]:
    """Safe mrkdwn both as fallback and as one section, at any length. Escape what is not ours
    before it gets here."""
    return truncate(text, FALLBACK_TEXT_LIMIT), [_section(text)]


def answers(text: str) -> list[tuple[str, list[Block]]]:
    """The model's answer as the messages that carry it, in order, nothing left out: Markdown
    blocks made safe, and mrkdwn fallback text (see `bot.slack.markdown`)."""
    return markdown.answer_messages(text)


def answer(text: str) -> tuple[str, list[Block]]:
    """The first message of the answer: all of it when it fits one message (12,000
    characters); `answers` carries the rest."""
    return answers(text)[0]


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
            f"• `{escape(call.tool_name, 200)}` was approved and may or may not have run: "
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

"""The App Home inbox: the calls the viewer may decide now, each with its card's buttons, then
what they decided lately. Pure, and within Slack's limit of 100 blocks a view whatever is
waiting: at most `SHOWN` calls of three blocks each, the rest counted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.slack import blocks
from bot.slack.mirror_blocks import thread_line
from storage.decision_log import PastDecision
from storage.models import DecisionKind

SHOWN = 20
RECENT = 10
MAX_BLOCKS = 100
HOME_ARGUMENTS_LIMIT = 1000


@dataclass(frozen=True)
class InboxItem:
    view: blocks.ApprovalView
    channel_id: str
    asked_at: datetime
    link: str | None  # the thread, from Slack; None when it gave none


def ago(moment: datetime) -> str:
    """ "3 minutes ago", drawn by each viewer's Slack in their own time."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{ago}}|{fallback}>"


def _item(item: InboxItem) -> list[blocks.Block]:
    view = item.view
    arguments = view.edited_arguments or view.arguments
    edited = " (as edited by an approver: what runs)" if view.edited_arguments else ""
    text = f":lock: `{blocks.escape(view.tool_name, 200)}`{edited}\n" + blocks.code(
        blocks.pretty_arguments(arguments), HOME_ARGUMENTS_LIMIT
    )
    needed = (
        " · " + blocks.quorum_line(view.approved_by, view.approvals_needed)
        if view.approvals_needed > 1
        else ""
    )
    context = (
        f"Asked by {blocks.mentions(view.requesters) or 'nobody known'} "
        f"{ago(item.asked_at)} · {thread_line(item.channel_id, item.link)[len(':link: ') :]}"
        f"{needed}"
    )
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": blocks.truncate(text, 3000)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        blocks.approval_actions(view),
    ]


_DONE = {
    DecisionKind.APPROVE: ":white_check_mark: Approved",
    DecisionKind.THREAD_APPROVAL: ":white_check_mark: Approved for the thread",
    DecisionKind.REJECT: ":no_entry: Rejected",
    DecisionKind.EDIT: ":pencil2: Edited",
    DecisionKind.REVOKE: ":octagonal_sign: Revoked a thread approval of",
}


def _past(decision: PastDecision) -> str:
    did = _DONE.get(decision.kind, blocks.escape(str(decision.kind), 40))
    where = f"<#{decision.channel_id}>" if blocks.is_slack_id(decision.channel_id) else "a channel"
    return f"{did} `{blocks.escape(decision.tool_name, 200)}` in {where} {ago(decision.at)}"


def home_view(
    items: Sequence[InboxItem], more: int, recent: Sequence[PastDecision]
) -> dict[str, object]:
    """`items` newest first (only the first `SHOWN` are drawn), `more` how many else wait."""
    shown = list(items[:SHOWN])
    more += len(items) - len(shown)
    body: list[blocks.Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Waiting for your decision"}}
    ]
    if not shown:
        body.append(_text("Nothing waits for your decision right now."))
    for item in shown:
        body.extend(_item(item))
    if more:
        body.append(
            _text(f"…and {more} more, older. Decide these first, or find them in their threads.")
        )
    body.append({"type": "divider"})
    body.append({"type": "header", "text": {"type": "plain_text", "text": "Your recent decisions"}})
    lines = [_past(d) for d in recent[:RECENT]]
    body.append(_text("\n".join(lines) if lines else "You have not decided anything yet."))
    assert len(body) <= MAX_BLOCKS
    return {"type": "home", "blocks": body}


def _text(text: str) -> blocks.Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": blocks.truncate(text, 3000)}}

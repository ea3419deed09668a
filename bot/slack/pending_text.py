"""`/threadgate pending`: the calls waiting that this person may decide now, each with a link to
its card, in one private message. The arguments are the model's (or an editor's): escaped."""

import asyncio
import json

from bot.approvals.approvals import Approvals
from bot.approvals.decidable import decidable_by
from bot.slack.blocks import escape, mention, slack_date
from bot.slack.permalinks import Permalinks
from storage.models import Approval

# What one private answer holds: listed calls, and characters (Slack cuts longer messages,
# and a list nobody scrolls through is not read anyway).
LISTED = 20
TEXT_BUDGET = 3500
ARGUMENTS_SHOWN = 150
NOTHING = "Nothing is waiting for you: no pending call is yours to decide right now."


async def pending_text(
    approvals: Approvals, permalinks: Permalinks, *, user_id: str, team_id: str
) -> str:
    found = await decidable_by(approvals, user_id, team_id, limit=LISTED + 1)
    if not found:
        return NOTHING
    shown = found[:LISTED]
    links = await asyncio.gather(*(_link(permalinks, a) for a in shown))
    lines = [
        f"*{_count(len(found))}* waiting for you to decide (soonest to expire first):",
    ]
    used = len(lines[0])
    listed = 0
    for approval, link in zip(shown, links, strict=True):
        line = pending_line(approval, link)
        if used + len(line) + 1 > TEXT_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
        listed += 1
    left = len(found) - listed
    if left:
        more = "more" if len(found) <= LISTED else "or more"
        lines.append(f"…and {left} {more} not listed here; decide these first.")
    return "\n".join(lines)


def _count(found: int) -> str:
    if found > LISTED:
        return f"More than {LISTED} calls"
    return f"{found} call{'s' if found != 1 else ''}"


async def _link(permalinks: Permalinks, approval: Approval) -> str | None:
    if approval.message_ts is None:
        return None
    return await permalinks.of(approval.channel_id, approval.message_ts)


def pending_line(approval: Approval, link: str | None) -> str:
    arguments = _compact(approval.edited_arguments or approval.arguments)
    if link is not None:
        where = f"<{link}|open the card>"
    elif approval.message_ts is None:
        where = "its card is not posted yet"
    else:
        where = "Slack gave no link to its card just now"
    parts = [
        f"• `{escape(approval.tool_name, 200)}` {escape(arguments, ARGUMENTS_SHOWN)}",
        f"asked by {mention(approval.requested_by)} in <#{approval.channel_id}>",
    ]
    if approval.approvals_needed > 1:
        parts.append(f"needs {approval.approvals_needed} approvals")
    parts += [f"expires {slack_date(approval.expires_at)}", where]
    return " · ".join(parts)


def _compact(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, TypeError):
        return arguments

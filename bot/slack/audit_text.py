"""`/threadgate audit [7d]`: the workspace's recent audit entries in one private message, for
admins, newest last. What does not fit is counted, and `python -m bot audit` prints it all.

An entry holds ids, digests and the config's rule labels; all of it is escaped anyway, as
nothing in it is the bot's own formatting.
"""

import re
from datetime import timedelta

from bot.slack.blocks import escape, mention, slack_date
from storage import audit
from storage.database import Database
from storage.models import utcnow

DEFAULT_WINDOW = timedelta(days=7)
LONGEST_WINDOW = timedelta(days=366)
_WINDOW = re.compile(r"^(\d{1,5})([dh])$")
# What one private answer holds: entries read, and characters of them.
READ = 60
TEXT_BUDGET = 3500
BAD_WINDOW = (
    "`/threadgate audit` takes how far back to look, in days or hours: `7d` (the default) "
    "or `12h`, at most 366 days. Nothing was changed."
)


def parse_window(words: list[str]) -> timedelta | None:
    """None for anything but no word or one like `7d` / `12h` within a year."""
    if not words:
        return DEFAULT_WINDOW
    if len(words) > 1:
        return None
    match = _WINDOW.match(words[0].lower())
    if match is None or int(match.group(1)) == 0:
        return None
    amount = int(match.group(1))
    window = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
    return window if window <= LONGEST_WINDOW else None


def window_text(window: timedelta) -> str:
    hours = int(window.total_seconds()) // 3600
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


async def audit_text(db: Database, *, team_id: str, window: timedelta) -> str:
    since = utcnow() - window
    entries = await audit.entries(db, since=since, limit=READ, team_id=team_id)
    shown = window_text(window)
    if not entries:
        return f"No audit entries in the last {shown}."
    total = await audit.count(db, since=since, team_id=team_id)
    lines: list[str] = []
    used = 0
    for entry in reversed(entries):  # newest first, so the newest are kept
        line = entry_line(entry)
        if used + len(line) + 1 > TEXT_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
    lines.reverse()
    head = f"*Audit log, last {shown}* ({total} entr{'y' if total == 1 else 'ies'}, newest last):"
    left = total - len(lines)
    tail = (
        [
            f"_{left} older entr{'y' if left == 1 else 'ies'} of these {shown} not shown here: "
            f"`python -m bot audit --since {shown}` prints them all._"
        ]
        if left
        else []
    )
    return "\n".join([head, *tail, *lines])


def entry_line(entry: audit.Entry) -> str:
    parts = [
        slack_date(entry.at),
        f"*{escape(entry.event, 40)}*",
        f"`{escape(entry.tool, 100)}`",
        "by " + mention(entry.user),
        f"in <#{entry.channel}>" if re.fullmatch(r"[CGD][A-Z0-9]{2,30}", entry.channel) else "",
        escape(entry.rule, 150) if entry.rule else "",
        escape(entry.detail, 200) if entry.detail else "",
        f"approval `{escape(entry.approval_id, 40)}`",
    ]
    return "• " + " · ".join(part for part in parts if part)

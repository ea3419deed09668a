"""A card's copy in the approvals channel: the card as it stands, with where it was asked.

The copy decides like the card (the same buttons). A thread approval's Revoke stays in the
thread: it is about that thread, and its click is checked against it.
"""

from bot.slack import blocks


def thread_line(channel_id: str, link: str | None) -> str:
    """Where the call was asked: our own channel mention, and Slack's own link to the thread
    when it gave one (a permalink holds no `|` or `>`; anything else is not shown)."""
    where = f"<#{channel_id}>" if blocks.is_slack_id(channel_id) else "a channel"
    if link and link.startswith("https://") and not any(c in link for c in "|<> "):
        return f":link: Asked in <{link}|a thread> in {where}"
    return f":link: Asked in a thread in {where}"


def mirrored(body: list[blocks.Block], channel_id: str, link: str | None) -> list[blocks.Block]:
    kept = [block for block in body if not _is_revoke(block)]
    context: blocks.Block = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": thread_line(channel_id, link)}],
    }
    return [*kept[:1], context, *kept[1:]]


def _is_revoke(block: blocks.Block) -> bool:
    return block.get("type") == "actions" and any(
        isinstance(e, dict) and e.get("action_id") == blocks.REVOKE_THREAD_ACTION
        for e in block.get("elements") or []
    )

"""What a reminder or an escalation says: the tool, who asked, and a link to the card.

A person reads it in a direct message; a user group, mentioned in the call's thread. The tool's
name comes from the model and is escaped; the link is Slack's own permalink of the card.
"""

from collections.abc import Sequence

from bot.slack import blocks
from bot.slack.mrkdwn import escape


def _link(permalink: str | None, channel_id: str) -> str:
    if not permalink:
        return f"The request is in <#{channel_id}>."
    # `|` and `>` would end the link early; a permalink holds neither, but it is not ours.
    url = escape(permalink).replace("|", "%7C")
    return f"<{url}|Open the request>"


def reminder(
    *,
    step: str,
    to: str,
    in_thread: bool,
    tool_name: str,
    requesters: Sequence[str],
    channel_id: str,
    permalink: str | None,
) -> tuple[str, list[blocks.Block]]:
    """`to` is told directly (a DM) or, with `in_thread`, named in the thread."""
    tool = f"`{escape(tool_name, 200)}`"
    asked = ", ".join(blocks.mention(r) for r in requesters[:10]) or "somebody"
    where = "" if in_thread else f" in <#{channel_id}>"
    whom = f"{blocks.mention(to)}: " if in_thread else ""
    if step == "escalate":
        text = (
            f":rotating_light: {whom}the request of {asked} to run {tool}{where} was escalated "
            f"to {'you' if not in_thread else blocks.mention(to)}: nobody decided it in time, "
            "and you may approve or reject it now."
        )
    else:
        text = (
            f":bell: {whom}{asked} asked to run {tool}{where}, and it is still waiting for "
            "your decision."
        )
    return blocks.plain(f"{text} {_link(permalink, channel_id)}")

"""`/threadgate`: a private summary of how this workspace's threadgate is set up."""

from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.approvals.policy import Policy
from bot.slack.blocks import mention

COMMAND = "/threadgate"


def help_text(policy: Policy, tools: Sequence[str]) -> str:
    lines = [
        "*threadgate* runs an AI agent in every thread it is mentioned in.",
        "Mention me in a channel or write to me directly; I answer in the thread.",
        "Tools: " + (", ".join(f"`{t}`" for t in tools) or "none"),
    ]
    for name in tools:
        if policy.needs_approval(name):
            who = ", ".join(mention(a) for a in policy.approvers_for(name)) or "nobody"
            lines.append(f"• `{name}` needs approval by {who}")
    return "\n".join(lines)


def register(app: AsyncApp, *, policy: Policy, tool_names: Sequence[str]) -> None:
    @app.command(COMMAND)
    async def handle_threadgate_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack(response_type="ephemeral", text=help_text(policy, tool_names))

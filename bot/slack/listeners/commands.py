"""`/threadgate`: a private summary of how this workspace's threadgate is set up (its tools,
the approval rules in force, in order, and who approves what), and
`/threadgate feedback`: the counts of 👍 / 👎 on answers, for approvers."""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.approvals.policy import Policy
from bot.approvals.rules import CallRule
from bot.runtime.answer_feedback import AnswerFeedback
from bot.slack.blocks import escape, mention
from storage.database import UNAVAILABLE

log = logging.getLogger(__name__)

COMMAND = "/threadgate"
FEEDBACK_SUBCOMMAND = "feedback"
# The counts are the ack's own text, the one private answer that works in any channel; Slack
# waits 3 seconds for it, so reading them gets at most this long.
FEEDBACK_DEADLINE = 2.0
COUNTS_UNAVAILABLE = "I couldn't read the feedback counts just now. Please try again in a minute."


def help_text(policy: Policy, tools: Sequence[str]) -> str:
    lines = [
        "*threadgate* runs an AI agent in every thread it is mentioned in.",
        "Mention me in a channel or write to me directly; I answer in the thread.",
        "Tools: " + (", ".join(f"`{t}`" for t in tools) or "none"),
    ]
    if policy.call_rules:
        lines.append(
            "Rules, checked in order before each tool's own policy (the first match decides):"
        )
        lines.extend(rule_text(rule) for rule in policy.call_rules)
    for name in tools:
        if policy.needs_approval(name):
            who = ", ".join(mention(a) for a in policy.approvers_for(name)) or "nobody"
            lines.append(f"• `{name}` needs approval by {who}")
    lines.append(f"Approvers: `{COMMAND} {FEEDBACK_SUBCOMMAND}` counts the 👍 / 👎 on my answers.")
    return "\n".join(lines)


def rule_text(rule: CallRule) -> str:
    """One rule on one line, as written in the config; what it leaves out is said to come
    from the tool's own policy."""
    tools = "every tool" if rule.tools is None else ", ".join(f"`{t}`" for t in sorted(rule.tools))
    scope = [tools]
    if rule.channels is not None:
        scope.append("in " + ", ".join(f"<#{c}>" for c in sorted(rule.channels)))
    if rule.requesters is not None:
        scope.append("asked by " + ", ".join(mention(r) for r in rule.requesters))
    if rule.tests:
        scope.append("when " + escape(rule.conditions(), 1000))
    said = rule.settings
    effect = []
    if said.require is not None:
        effect.append("needs approval" if said.require else "runs without approval")
    if said.approvals_needed is not None:
        effect.append(
            f"{said.approvals_needed} approval{'s' if said.approvals_needed != 1 else ''}"
        )
    if said.approvers is not None:
        effect.append("from " + (", ".join(mention(a) for a in said.approvers) or "nobody"))
    if said.allow_for_thread is not None:
        effect.append(f"allow_for_thread = {str(said.allow_for_thread).lower()}")
    if said.thread_approval_ttl is not None:
        effect.append(f"thread approvals last {said.thread_approval_ttl}")
    if said.allow_edit is not None:
        effect.append(f"allow_edit = {str(said.allow_edit).lower()}")
    if not effect:
        effect.append("as the tool's own policy says")
    return f"{rule.number}. " + " ".join(scope) + " → " + ", ".join(effect)


async def feedback_text(feedback: AnswerFeedback, user_id: str) -> str:
    try:
        async with asyncio.timeout(FEEDBACK_DEADLINE):
            return await feedback.summary(user_id)
    except (TimeoutError, *UNAVAILABLE) as exc:
        log.warning("feedback counts unavailable (%s)", type(exc).__name__)
        return COUNTS_UNAVAILABLE


def register(
    app: AsyncApp, *, policy: Policy, tool_names: Sequence[str], feedback: AnswerFeedback
) -> None:
    @app.command(COMMAND)
    async def handle_threadgate_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        text = body.get("text")
        words = text.split() if isinstance(text, str) else []
        user = body.get("user_id")
        if [w.lower() for w in words] == [FEEDBACK_SUBCOMMAND] and isinstance(user, str):
            await ack(response_type="ephemeral", text=await feedback_text(feedback, user))
            return
        await ack(response_type="ephemeral", text=help_text(policy, tool_names))

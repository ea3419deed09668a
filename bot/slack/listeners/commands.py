"""`/threadgate [help | pending | policy | feedback | audit [7d]]`: every answer is private.

What needs no I/O (help, the policy in force) is the ack's own text. The counts of feedback
are read within the ack's deadline. What reads more, or asks Slack for links (pending, the
audit log), is acked at once and answered through the command's `response_url`, which Slack
shows only to the person who typed the command.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.agent.mcp_servers import McpServerStatus
from bot.approvals.approvals import Approvals
from bot.approvals.deciding import CallPolicies
from bot.runtime.answer_feedback import AnswerFeedback
from bot.runtime.background import Background
from bot.slack.admins import Admins
from bot.slack.audit_text import BAD_WINDOW, audit_text, parse_window
from bot.slack.blocks import escape, truncate
from bot.slack.listeners.parsing import MalformedPayload, bad_request, require_id
from bot.slack.pending_text import pending_text
from bot.slack.permalinks import Permalinks
from bot.slack.policy_text import policy_text
from storage.database import UNAVAILABLE

log = logging.getLogger(__name__)

COMMAND = "/threadgate"
HELP_SUBCOMMAND = "help"
PENDING_SUBCOMMAND = "pending"
POLICY_SUBCOMMAND = "policy"
FEEDBACK_SUBCOMMAND = "feedback"
AUDIT_SUBCOMMAND = "audit"
# The counts are the ack's own text, the one private answer that works in any channel; Slack
# waits 3 seconds for it, so reading them gets at most this long.
FEEDBACK_DEADLINE = 2.0
COUNTS_UNAVAILABLE = "I couldn't read the feedback counts just now. Please try again in a minute."
PENDING_UNAVAILABLE = "I couldn't read the waiting calls just now. Please try again in a minute."
AUDIT_UNAVAILABLE = "I couldn't read the audit log just now. Please try again in a minute."
FOR_ADMINS = (
    "The audit log is for admins: the people (or user groups) listed in `[admin] users` in "
    "threadgate's config. Nothing was changed."
)
# Slack shows a message's text up to 40,000 characters; a private answer stays far below.
ANSWER_LIMIT = 3900

HELP = "\n".join(
    [
        "*threadgate* runs an AI agent in every thread it is mentioned in. Mention me in a "
        "channel or write to me directly; I answer in the thread. A tool call that needs a "
        "person waits for an approver's Approve or Reject on its card.",
        "Commands (only you see the answers):",
        f"• `{COMMAND} {PENDING_SUBCOMMAND}`: the calls waiting that you may decide now, "
        "with links to their cards",
        f"• `{COMMAND} {POLICY_SUBCOMMAND}`: the tools, the approval rules and the approvers "
        "in force",
        f"• `{COMMAND} {FEEDBACK_SUBCOMMAND}`: the counts of 👍 / 👎 on my answers (approvers)",
        f"• `{COMMAND} {AUDIT_SUBCOMMAND} [7d]`: the recent decisions, over the last days "
        "(`7d`) or hours (`12h`) (admins)",
        f"• `{COMMAND} {HELP_SUBCOMMAND}`: this help",
    ]
)


def unknown_text(words: Sequence[str]) -> str:
    return f"I don't know `{escape(' '.join(words), 100)}`. " + HELP


async def feedback_text(feedback: AnswerFeedback, user_id: str) -> str:
    try:
        async with asyncio.timeout(FEEDBACK_DEADLINE):
            return await feedback.summary(user_id)
    except (TimeoutError, *UNAVAILABLE) as exc:
        log.warning("feedback counts unavailable (%s)", type(exc).__name__)
        return COUNTS_UNAVAILABLE


async def respond(
    response_url: str, answer: Callable[[], Awaitable[str]], unavailable: str
) -> None:
    """Work out the answer after the ack and send it privately; the URL is a credential of
    sorts (it answers as the app), so it is never logged."""
    try:
        text = await answer()
    except UNAVAILABLE as exc:
        log.warning("a command could not read the database (%s)", type(exc).__name__)
        text = unavailable
    try:
        response = await AsyncWebhookClient(response_url).send(
            text=truncate(text, ANSWER_LIMIT), response_type="ephemeral"
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("could not answer a command (%s)", type(exc).__name__)
        return
    if response.status_code != 200:
        log.warning("Slack refused a command's answer (HTTP %d)", response.status_code)


def register(
    app: AsyncApp,
    *,
    policies: CallPolicies,
    tool_names: Callable[[], Sequence[str]],
    mcp_servers: Callable[[], Sequence[McpServerStatus]],
    feedback: AnswerFeedback,
    approvals: Approvals,
    admins: Admins,
    background: Background,
    permalinks: Permalinks,
) -> None:
    @app.command(COMMAND)
    async def handle_threadgate_command(ack: AsyncAck, body: dict[str, Any]) -> BoltResponse | None:
        text = body.get("text")
        words = text.split() if isinstance(text, str) else []
        subcommand = words[0].lower() if words else HELP_SUBCOMMAND
        arguments = words[1:]
        if subcommand == HELP_SUBCOMMAND and not arguments:
            await ack(response_type="ephemeral", text=HELP)
            return None
        if subcommand == POLICY_SUBCOMMAND and not arguments:
            text = policy_text(policies.policy, tool_names(), mcp_servers())
            await ack(response_type="ephemeral", text=text)
            return None
        window = parse_window(arguments) if subcommand == AUDIT_SUBCOMMAND else None
        if subcommand == AUDIT_SUBCOMMAND and window is None:
            await ack(response_type="ephemeral", text=BAD_WINDOW)
            return None
        known = subcommand in (FEEDBACK_SUBCOMMAND, PENDING_SUBCOMMAND, AUDIT_SUBCOMMAND)
        if not known or (arguments and window is None):
            await ack(response_type="ephemeral", text=unknown_text(words))
            return None
        try:
            user = require_id(body, "user_id")
            team = require_id(body, "team_id")
        except MalformedPayload as exc:
            return bad_request(exc)
        if subcommand == FEEDBACK_SUBCOMMAND:
            await ack(response_type="ephemeral", text=await feedback_text(feedback, user))
            return None
        url = body.get("response_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return bad_request(MalformedPayload("response_url is not a URL"))
        await ack()
        if window is not None:

            async def audit() -> str:
                if not await admins.includes(user):
                    return FOR_ADMINS
                return await audit_text(approvals.db, team_id=team, window=window)

            background.spawn(respond(url, audit, AUDIT_UNAVAILABLE), name="audit")
            return None

        async def pending() -> str:
            return await pending_text(approvals, permalinks, user_id=user, team_id=team)

        background.spawn(respond(url, pending, PENDING_UNAVAILABLE), name="pending")
        return None

"""Mentions and messages become thread messages; everything else a bot sees is ignored."""

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.runtime.conversations import Conversations, IncomingMessage, strip_mention
from bot.slack.listeners.parsing import MalformedPayload, bad_request, field_str, require

log = logging.getLogger(__name__)

# Message subtypes that are a person writing; edits, deletions, joins and bots are not.
_PERSON_SUBTYPES = {None, "thread_broadcast", "file_share"}


def _incoming(
    body: dict[str, Any], context: AsyncBoltContext, *, mention: bool
) -> IncomingMessage | None:
    event = body.get("event")
    if not isinstance(event, dict):
        raise MalformedPayload("missing event")
    if event.get("bot_id") or event.get("subtype") not in _PERSON_SUBTYPES:
        return None
    user = require(event, "user")
    if user == context.bot_user_id:
        return None
    text = field_str(event, "text", required=False) or ""
    bot = context.bot_user_id
    direct = field_str(event, "channel_type", required=False) == "im"
    addressed = mention or direct or (bot is not None and f"<@{bot}" in text)
    team = field_str(body, "team_id", required=False) or require(event, "team")
    return IncomingMessage(
        event_id=require(body, "event_id"),
        team_id=team,
        channel_id=require(event, "channel"),
        user_id=user,
        ts=require(event, "ts"),
        thread_ts=field_str(event, "thread_ts", required=False),
        text=strip_mention(text, bot),
        addressed_to_bot=addressed,
    )


def register(app: AsyncApp, *, conversations: Conversations) -> None:
    async def receive(
        body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck, *, mention: bool
    ) -> BoltResponse | None:
        try:
            message = _incoming(body, context, mention=mention)
        except MalformedPayload as exc:
            return bad_request(exc)
        if message is not None:
            await conversations.receive(message)
        await ack()
        return None

    @app.event("app_mention")
    async def handle_app_mention(
        body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> BoltResponse | None:
        return await receive(body, context, ack, mention=True)

    @app.event("message")
    async def handle_message(
        body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> BoltResponse | None:
        return await receive(body, context, ack, mention=False)

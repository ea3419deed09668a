"""Mentions and messages become thread messages; everything else a bot sees is ignored."""

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.runtime.conversations import Conversations, IncomingMessage, strip_mention
from bot.slack.listeners.parsing import (
    EVENT_ID,
    MalformedPayload,
    bad_request,
    field_str,
    require_id,
    slack_id,
)

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
    user = require_id(event, "user")
    if user == context.bot_user_id:
        return None
    text = field_str(event, "text", required=False) or ""
    bot = context.bot_user_id
    direct = field_str(event, "channel_type", required=False) == "im"
    addressed = mention or direct or (bot is not None and f"<@{bot}" in text)
    team = slack_id(body, "team_id", required=False) or require_id(event, "team")
    return IncomingMessage(
        event_id=require_id(body, "event_id", shape=EVENT_ID),
        team_id=team,
        channel_id=require_id(event, "channel"),
        user_id=user,
        ts=require_id(event, "ts"),
        thread_ts=slack_id(event, "thread_ts", required=False),
        text=strip_mention(text, bot),
        addressed_to_bot=addressed,
        enterprise_id=context.enterprise_id,
        has_files=_has_files(event),
    )


def _has_files(event: dict[str, Any]) -> bool:
    """Whether the message carries files, as its event says; false lets the run of a thread's
    first message skip reading the thread. `app_mention` events carry `files` as `message`
    events do, so either of a mention's two events tells the same. A `files` of any odd shape
    counts as files: the read then happens, as it did before this was recorded."""
    return event.get("subtype") == "file_share" or bool(event.get("files"))


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

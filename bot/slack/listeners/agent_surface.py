"""Where people open a conversation with the agent: the app's Messages tab (the agent view)
and, in the older assistant view, a new assistant thread. Neither starts a run; each offers the
suggested prompts. What the person then writes is an ordinary direct message (events.py).

The Home tab is the approvals inbox: opening it publishes the person's Home view, drawn from
the database (bot.approvals.inbox).
"""

from collections.abc import Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.runtime.background import Background
from bot.slack.listeners.parsing import (
    MalformedPayload,
    bad_request,
    field_str,
    require_id,
    slack_id,
)
from bot.slack.suggested_prompts import SuggestedPrompts
from bot.slack.workspace_scope import current_team


def _event(body: dict[str, Any]) -> dict[str, Any]:
    event = body.get("event")
    if not isinstance(event, dict):
        raise MalformedPayload("missing event")
    return event


def register(
    app: AsyncApp,
    *,
    prompts: SuggestedPrompts,
    background: Background,
    home: Callable[[str, str], Coroutine[Any, Any, None]],
) -> None:
    def offer(channel_id: str, thread_ts: str | None) -> None:
        team_id = current_team()  # the request's workspace, whose prompts these are
        background.spawn(
            prompts.offer(channel_id=channel_id, thread_ts=thread_ts, team_id=team_id),
            name="suggested prompts",
        )

    @app.event("app_home_opened")
    async def handle_app_home_opened(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            event = _event(body)
            tab = field_str(event, "tab", required=False)
            channel = require_id(event, "channel") if tab == "messages" else None
            viewer = None
            if tab == "home":
                user = require_id(event, "user")
                viewer = (slack_id(body, "team_id", required=False) or "", user)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        if channel is not None:
            offer(channel, None)
        if viewer is not None and viewer[0]:
            background.spawn(home(*viewer), name="home view")
        return None

    @app.event("assistant_thread_started")
    async def handle_assistant_thread_started(
        body: dict[str, Any], ack: AsyncAck
    ) -> BoltResponse | None:
        try:
            event = _event(body)
            channel = require_id(event, "assistant_thread", "channel_id")
            thread_ts = require_id(event, "assistant_thread", "thread_ts")
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        offer(channel, thread_ts)
        return None

    @app.event("assistant_thread_context_changed")
    async def handle_assistant_thread_context_changed(ack: AsyncAck) -> None:
        # The channel the person is looking at. The agent does not read it: it answers what is
        # written to it, and reading a channel would first need a check that the app may.
        await ack()

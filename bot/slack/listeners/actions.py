"""Approve, Approve for this thread, Reject, Edit, Revoke and Retry buttons. A button's value
is untrusted: only an id to look up."""

from collections.abc import Coroutine
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.approvals.approvals import Approvals, Click
from bot.approvals.thread_approvals import RevokeClick, ThreadApprovals
from bot.runtime.interruptions import Interruptions, RetryClick
from bot.slack.blocks import (
    APPROVE_ACTION,
    APPROVE_THREAD_ACTION,
    EDIT_ACTION,
    REJECT_ACTION,
    RETRY_ACTION,
    REVOKE_THREAD_ACTION,
)
from bot.slack.listeners.after_ack import AfterAck
from bot.slack.listeners.parsing import (
    MalformedPayload,
    bad_request,
    field_str,
    require_id,
    slack_id,
)
from bot.slack.replies import ThreadReplies
from storage.ids import APPROVAL_ID, RUN_ID, THREAD_APPROVAL_ID

INVALID_BUTTON = "That button is not valid. Ask the bot again in the thread if you need it."


def _click(
    body: dict[str, Any], action: Literal["approve", "reject", "edit"]
) -> tuple[Click, bool]:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedPayload("missing actions")
    value = actions[0].get("value")
    channel = slack_id(body, "channel", "id", required=False) or require_id(
        body, "container", "channel_id"
    )
    team = slack_id(body, "team", "id", required=False) or require_id(body, "user", "team_id")
    click = Click(
        approval_id=value if isinstance(value, str) else "",
        action=action,
        user_id=require_id(body, "user", "id"),
        team_id=team,
        channel_id=channel,
        trigger_id=field_str(body, "trigger_id", required=False),
    )
    return click, bool(APPROVAL_ID.match(click.approval_id))


def _retry(body: dict[str, Any]) -> tuple[RetryClick, bool]:
    click, _valid = _click(body, "approve")
    retry = RetryClick(
        run_id=click.approval_id,
        user_id=click.user_id,
        team_id=click.team_id,
        channel_id=click.channel_id,
        message_ts=slack_id(body, "container", "message_ts", required=False),
    )
    return retry, bool(RUN_ID.match(retry.run_id))


def _revoke(body: dict[str, Any]) -> tuple[RevokeClick, bool]:
    click, _valid = _click(body, "approve")
    revoke = RevokeClick(
        thread_approval_id=click.approval_id,
        user_id=click.user_id,
        team_id=click.team_id,
        channel_id=click.channel_id,
    )
    return revoke, bool(THREAD_APPROVAL_ID.match(revoke.thread_approval_id))


def _start(
    after_ack: AfterAck,
    replies: ThreadReplies,
    valid: bool,
    channel: str,
    user: str,
    work: Coroutine[Any, Any, None],
    name: str,
) -> None:
    """Start the work, or tell the clicker privately that the button was not valid."""
    if valid:
        after_ack.start(work, channel=channel, user=user, thread_ts=None, name=name)
        return
    work.close()
    note = replies.private(channel=channel, user=user, thread_ts=None, text=INVALID_BUTTON)
    after_ack.background.spawn(note, name="invalid button")


def register_thread_approvals(
    app: AsyncApp, *, threads: ThreadApprovals, replies: ThreadReplies, after_ack: AfterAck
) -> None:
    @app.action(APPROVE_THREAD_ACTION)
    async def handle_approve_thread(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            click, valid = _click(body, "approve")
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = threads.approve(click)
        _start(after_ack, replies, valid, click.channel_id, click.user_id, work, "approve thread")
        return None

    @app.action(REVOKE_THREAD_ACTION)
    async def handle_revoke(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            revoke, valid = _revoke(body)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = threads.revoke(revoke)
        _start(after_ack, replies, valid, revoke.channel_id, revoke.user_id, work, "revoke")
        return None


def register(
    app: AsyncApp,
    *,
    approvals: Approvals,
    interruptions: Interruptions,
    replies: ThreadReplies,
    after_ack: AfterAck,
) -> None:
    def start(
        valid: bool, channel: str, user: str, work: Coroutine[Any, Any, None], name: str
    ) -> None:
        """Start the work, or tell the clicker privately that the button was not valid."""
        if valid:
            after_ack.start(work, channel=channel, user=user, thread_ts=None, name=name)
            return
        work.close()
        note = replies.private(channel=channel, user=user, thread_ts=None, text=INVALID_BUTTON)
        after_ack.background.spawn(note, name="invalid button")

    async def on_click(
        body: dict[str, Any], ack: AsyncAck, action: Literal["approve", "reject", "edit"]
    ) -> BoltResponse | None:
        try:
            click, valid = _click(body, action)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = approvals.click(click)
        start(valid, click.channel_id, click.user_id, work, f"click {action}")
        return None

    @app.action(APPROVE_ACTION)
    async def handle_approve(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        return await on_click(body, ack, "approve")

    @app.action(REJECT_ACTION)
    async def handle_reject(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        return await on_click(body, ack, "reject")

    @app.action(EDIT_ACTION)
    async def handle_edit(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        return await on_click(body, ack, "edit")

    @app.action(RETRY_ACTION)
    async def handle_retry(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            retry, valid = _retry(body)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = interruptions.retry(retry)
        start(valid, retry.channel_id, retry.user_id, work, "retry")
        return None

"""Approve, Approve for this thread, Reject, Edit, Revoke and Retry buttons. A button's value
is untrusted: only an id to look up.

The approval buttons are also in the approvals channel's copies (a click there has that
channel) and in the App Home (a click there has no channel at all: it says it came from a
`home` view, and is answered by direct message)."""

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.approvals.approvals import Approvals, Click
from bot.approvals.inbox import redrawn_after
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

Home = Callable[[str, str], Awaitable[None]]


async def _then_home(
    work: Callable[[Click], Coroutine[Any, Any, None]], click: Click, home: Home
) -> None:
    """A Home click, then the clicker's Home drawn again, whatever the click did: the call it
    named may be gone from the inbox. The refresh the click's change starts leaves them out."""
    if not click.from_home:
        await work(click)
        return
    try:
        with redrawn_after(click.team_id, click.user_id):
            await work(click)
    finally:
        await home(click.team_id, click.user_id)


def _from_home(body: dict[str, Any]) -> bool:
    return (
        field_str(body, "container", "type", required=False) == "view"
        and field_str(body, "view", "type", required=False) == "home"
    )


def _click(
    body: dict[str, Any], action: Literal["approve", "reject", "edit"]
) -> tuple[Click, bool]:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedPayload("missing actions")
    value = actions[0].get("value")
    channel = slack_id(body, "channel", "id", required=False)
    if channel is None and not _from_home(body):
        channel = require_id(body, "container", "channel_id")
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


def _in_channel(body: dict[str, Any]) -> tuple[Click, str]:
    """Buttons only ever shown in a channel (Retry, Revoke)."""
    click, _valid = _click(body, "approve")
    if click.channel_id is None:
        raise MalformedPayload("missing channel")
    return click, click.channel_id


def _retry(body: dict[str, Any]) -> tuple[RetryClick, bool]:
    click, channel = _in_channel(body)
    retry = RetryClick(
        run_id=click.approval_id,
        user_id=click.user_id,
        team_id=click.team_id,
        channel_id=channel,
        message_ts=slack_id(body, "container", "message_ts", required=False),
    )
    return retry, bool(RUN_ID.match(retry.run_id))


def _revoke(body: dict[str, Any]) -> tuple[RevokeClick, bool]:
    click, channel = _in_channel(body)
    revoke = RevokeClick(
        thread_approval_id=click.approval_id,
        user_id=click.user_id,
        team_id=click.team_id,
        channel_id=channel,
    )
    return revoke, bool(THREAD_APPROVAL_ID.match(revoke.thread_approval_id))


def _start(
    after_ack: AfterAck,
    replies: ThreadReplies,
    valid: bool,
    channel: str | None,
    user: str,
    work: Coroutine[Any, Any, None],
    name: str,
) -> None:
    """Start the work, or tell the clicker privately that the button was not valid (by
    direct message when the click has no channel: the App Home)."""
    if valid:
        after_ack.start(work, channel=channel, user=user, thread_ts=None, name=name)
        return
    work.close()
    note = (
        replies.private(channel=channel, user=user, thread_ts=None, text=INVALID_BUTTON)
        if channel is not None
        else replies.direct(user=user, text=INVALID_BUTTON)
    )
    after_ack.background.spawn(note, name="invalid button")


def register_thread_approvals(
    app: AsyncApp,
    *,
    threads: ThreadApprovals,
    replies: ThreadReplies,
    after_ack: AfterAck,
    home: Home,
) -> None:
    @app.action(APPROVE_THREAD_ACTION)
    async def handle_approve_thread(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            click, valid = _click(body, "approve")
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = _then_home(threads.approve, click, home)
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
    home: Home,
) -> None:
    def start(
        valid: bool, channel: str | None, user: str, work: Coroutine[Any, Any, None], name: str
    ) -> None:
        _start(after_ack, replies, valid, channel, user, work, name)

    async def on_click(
        body: dict[str, Any], ack: AsyncAck, action: Literal["approve", "reject", "edit"]
    ) -> BoltResponse | None:
        try:
            click, valid = _click(body, action)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        work = _then_home(approvals.click, click, home)
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

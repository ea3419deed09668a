"""The reject-reason and edit modals: submitting rejects, or edits and approves; closing leaves
the approval pending. An edit's invalid arguments are answered in the ack, as inline errors,
so the modal stays open; everything else happens after it."""

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.approvals.approvals import Approvals, EditSubmission, Rejection
from bot.approvals.editing import BLOCK_PREFIX
from bot.slack.blocks import (
    ARGUMENT_INPUT,
    EDIT_VIEW,
    FROM_HOME,
    REASON_BLOCK,
    REASON_INPUT,
    REASON_LIMIT,
    REJECT_VIEW,
)
from bot.slack.listeners.after_ack import AfterAck
from bot.slack.listeners.parsing import (
    MalformedPayload,
    bad_request,
    field_str,
    require,
    require_id,
    slack_id,
)
from storage.ids import APPROVAL_ID


def _approval_of(body: dict[str, Any]) -> tuple[str, bool]:
    """The approval a modal is about, and whether it was opened from the App Home."""
    metadata = require(body, "view", "private_metadata")
    approval_id = metadata.removesuffix(FROM_HOME)
    if not APPROVAL_ID.fullmatch(approval_id):
        raise MalformedPayload("view.private_metadata is not an approval id")
    return approval_id, approval_id != metadata


def _rejection(body: dict[str, Any]) -> Rejection:
    approval_id, from_home = _approval_of(body)
    values = body["view"].get("state", {}).get("values", {})
    reason = ""
    if isinstance(values, dict):
        reason = field_str(values, REASON_BLOCK, REASON_INPUT, "value", required=False) or ""
    return Rejection(
        approval_id=approval_id,
        user_id=require_id(body, "user", "id"),
        team_id=slack_id(body, "team", "id", required=False) or require_id(body, "user", "team_id"),
        reason=reason[:REASON_LIMIT],
        from_home=from_home,
    )


def _edit(body: dict[str, Any]) -> EditSubmission:
    approval_id, from_home = _approval_of(body)
    values = body["view"].get("state", {}).get("values", {})
    submitted: dict[str, str | None] = {}
    if isinstance(values, dict):
        for block_id in values:
            if isinstance(block_id, str) and block_id.startswith(BLOCK_PREFIX):
                value = field_str(values, block_id, ARGUMENT_INPUT, "value", required=False)
                submitted[block_id] = value
    return EditSubmission(
        approval_id=approval_id,
        user_id=require_id(body, "user", "id"),
        team_id=slack_id(body, "team", "id", required=False) or require_id(body, "user", "team_id"),
        values=submitted,
        from_home=from_home,
    )


def register(app: AsyncApp, *, approvals: Approvals, after_ack: AfterAck) -> None:
    @app.view(REJECT_VIEW)
    async def handle_reject_submission(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            rejection = _rejection(body)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        after_ack.start(
            approvals.reject(rejection),
            channel=None,
            user=rejection.user_id,
            thread_ts=None,
            name="reject",
        )
        return None

    @app.view_closed(REJECT_VIEW)
    async def handle_reject_closed(ack: AsyncAck) -> None:
        await ack()

    @app.view(EDIT_VIEW)
    async def handle_edit_submission(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            edit = _edit(body)
        except MalformedPayload as exc:
            return bad_request(exc)
        errors = await approvals.edit_errors(edit)
        if errors:
            await ack(response_action="errors", errors=errors)
            return None
        await ack()
        after_ack.start(
            approvals.edit(edit), channel=None, user=edit.user_id, thread_ts=None, name="edit"
        )
        return None

    @app.view_closed(EDIT_VIEW)
    async def handle_edit_closed(ack: AsyncAck) -> None:
        await ack()

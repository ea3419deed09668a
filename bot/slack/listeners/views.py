"""The reject-reason modal: submitting rejects, closing leaves the approval pending."""

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.approvals.approvals import Approvals, Rejection
from bot.slack.blocks import REASON_BLOCK, REASON_INPUT, REASON_LIMIT, REJECT_VIEW
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


def _rejection(body: dict[str, Any]) -> Rejection:
    approval_id = require(body, "view", "private_metadata")
    if not APPROVAL_ID.match(approval_id):
        raise MalformedPayload("view.private_metadata is not an approval id")
    values = body["view"].get("state", {}).get("values", {})
    reason = ""
    if isinstance(values, dict):
        reason = field_str(values, REASON_BLOCK, REASON_INPUT, "value", required=False) or ""
    return Rejection(
        approval_id=approval_id,
        user_id=require_id(body, "user", "id"),
        team_id=slack_id(body, "team", "id", required=False) or require_id(body, "user", "team_id"),
        reason=reason[:REASON_LIMIT],
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

"""The 👍 / 👎 under an answer: a block action whose value is untrusted, only an id to look up.

A value we never sent is still acked (it is a well-formed click) and refused privately after
the ack; only a body of the wrong shape is a 400.
"""

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse

from bot.runtime.answer_feedback import AnswerFeedback, FeedbackClick
from bot.slack.feedback import FEEDBACK_ACTION, read_feedback_value
from bot.slack.listeners.after_ack import AfterAck
from bot.slack.listeners.parsing import MalformedPayload, bad_request, require_id, slack_id


def _click(body: dict[str, Any]) -> FeedbackClick:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedPayload("missing actions")
    channel = slack_id(body, "channel", "id", required=False) or require_id(
        body, "container", "channel_id"
    )
    team = slack_id(body, "team", "id", required=False) or require_id(body, "user", "team_id")
    return FeedbackClick(
        choice=read_feedback_value(actions[0].get("value")),
        user_id=require_id(body, "user", "id"),
        team_id=team,
        channel_id=channel,
        message_ts=slack_id(body, "container", "message_ts", required=False),
        thread_ts=slack_id(body, "container", "thread_ts", required=False),
    )


FEEDBACK_NOT_RECORDED = (
    ":warning: I couldn't record your feedback just now: my database is unreachable. "
    "Please try again in a minute."
)


def register(app: AsyncApp, *, feedback: AnswerFeedback, after_ack: AfterAck) -> None:
    @app.action(FEEDBACK_ACTION)
    async def handle_feedback(body: dict[str, Any], ack: AsyncAck) -> BoltResponse | None:
        try:
            click = _click(body)
        except MalformedPayload as exc:
            return bad_request(exc)
        await ack()
        after_ack.start(
            feedback.click(click),
            channel=click.channel_id,
            user=click.user_id,
            thread_ts=click.thread_ts,
            name="feedback",
            told=FEEDBACK_NOT_RECORDED,
        )
        return None

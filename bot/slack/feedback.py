"""Slack's feedback buttons under an answer, and reading a click on them back. Pure.

Each button's value names the answer (its run id) and the opinion. The value comes back in a
click that anyone holding the signing secret, or a tampered client, could shape, so it is only
ever an id to look up: anything but the exact shape we send is refused before any lookup.
"""

import re
from dataclasses import dataclass

from bot.slack.blocks import Block
from storage.ids import RUN_ID
from storage.models import FeedbackValue

FEEDBACK_ACTION = "threadgate_feedback"
_VALUE = re.compile(r"(positive|negative):(run_[0-9a-f]{32})")


@dataclass(frozen=True)
class FeedbackChoice:
    run_id: str
    value: FeedbackValue


def feedback_block(answer_ref: str) -> Block:
    """The `context_actions` block with 👍 / 👎 for the answer of run `answer_ref`.

    Goes last in the final message of an answer. Raises ValueError for anything that is not a
    run id: a value the click handler would refuse must never be sent.
    """
    if not RUN_ID.match(answer_ref):
        raise ValueError("answer_ref must be a run id")
    return {
        "type": "context_actions",
        "block_id": f"feedback:{answer_ref}",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {
                    "text": {"type": "plain_text", "text": "👍"},
                    "accessibility_label": "This answer was helpful",
                    "value": f"{FeedbackValue.POSITIVE.value}:{answer_ref}",
                },
                "negative_button": {
                    "text": {"type": "plain_text", "text": "👎"},
                    "accessibility_label": "This answer was not helpful",
                    "value": f"{FeedbackValue.NEGATIVE.value}:{answer_ref}",
                },
            }
        ],
    }


def read_feedback_value(value: object) -> FeedbackChoice | None:
    """The choice a clicked button's value names, or None for anything we never sent."""
    if not isinstance(value, str):
        return None
    match = _VALUE.fullmatch(value)
    if match is None:
        return None
    return FeedbackChoice(run_id=match.group(2), value=FeedbackValue(match.group(1)))

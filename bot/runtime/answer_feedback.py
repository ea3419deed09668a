"""What people think of the answers: a click on 👍 / 👎 is kept, and approvers can count them.

A click is answered privately, whatever happens, so the person knows whether it counted. The
counts are for the people who already oversee the agent (its approvers): the config has no
separate admin list, and who liked which answer is not for everyone to browse.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.approvals.authorization import is_user_group
from bot.approvals.deciding import CallPolicies
from bot.slack.feedback import FeedbackChoice
from bot.slack.replies import ThreadReplies
from bot.slack.user_groups import UserGroups
from storage.database import Database
from storage.feedback import Opinion, Recorded, Totals, record_opinion, totals_since
from storage.models import utcnow

log = logging.getLogger(__name__)

THANKS = "Thanks for the feedback."
THANKS_AGAIN = "Thanks, your feedback on this answer is updated."
UNKNOWN_ANSWER = "I can't find that answer here, so your feedback was not recorded."
INVALID_BUTTON = "That feedback button is not valid, so nothing was recorded."
FOR_APPROVERS = (
    "Feedback counts are for approvers: the people (or user groups) listed as `approvers` in "
    "threadgate's config."
)
WINDOWS = (7, 30)  # days the counts cover


@dataclass(frozen=True)
class FeedbackClick:
    """A click on a feedback button; `choice` is None when its value was not one we sent."""

    choice: FeedbackChoice | None
    user_id: str
    team_id: str
    channel_id: str
    message_ts: str | None
    thread_ts: str | None


class AnswerFeedback:
    def __init__(
        self,
        db: Database,
        *,
        replies: ThreadReplies,
        policies: CallPolicies,
        groups: UserGroups,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.replies = replies
        self.policies = policies
        self.groups = groups
        self.clock = clock

    async def click(self, click: FeedbackClick) -> None:
        """Store the opinion if it names an answer of this channel, then tell the clicker."""
        if click.choice is None:
            await self._tell(click, INVALID_BUTTON)
            return
        recorded = await record_opinion(
            self.db,
            Opinion(
                run_id=click.choice.run_id,
                team_id=click.team_id,
                channel_id=click.channel_id,
                message_ts=click.message_ts,
                user_id=click.user_id,
                value=click.choice.value,
            ),
        )
        if recorded == Recorded.UNKNOWN_ANSWER:
            log.info(
                "feedback on %s refused: no such answer in %s",
                click.choice.run_id,
                click.channel_id,
            )
            await self._tell(click, UNKNOWN_ANSWER)
            return
        log.info("feedback %s on %s (%s)", click.choice.value, click.choice.run_id, recorded)
        await self._tell(click, THANKS if recorded == Recorded.NEW else THANKS_AGAIN)

    async def _tell(self, click: FeedbackClick, text: str) -> None:
        await self.replies.private(
            channel=click.channel_id, user=click.user_id, thread_ts=click.thread_ts, text=text
        )

    async def may_count(self, user_id: str) -> bool:
        """Anyone who may approve some tool, directly or through one of the listed groups."""
        approvers = self.policies.policy.every_approver()
        if user_id in approvers:
            return True
        members = await self.groups.members(a for a in approvers if is_user_group(a))
        return any(user_id in group for group in members.values())

    async def summary(self, user_id: str) -> str:
        """The counts over the last 7 and 30 days, for an approver; a refusal for anyone else."""
        if not await self.may_count(user_id):
            return FOR_APPROVERS
        now = self.clock()
        lines = ["*Feedback on answers*"]
        for days in WINDOWS:
            totals = await totals_since(self.db, now - timedelta(days=days))
            lines.append(f"• Last {days} days: {_counts(totals)}")
        return "\n".join(lines)


def _counts(totals: Totals) -> str:
    if not totals.total:
        return "no feedback"
    share = totals.positive / totals.total
    return f"{totals.positive} 👍, {totals.negative} 👎 ({share:.0%} positive)"

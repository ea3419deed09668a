"""What happens when a run pauses for approval, and when Approve or Reject is clicked.

Pause: the state and one approval per call are stored in one transaction, then each call is
posted with its own buttons. Click: the approval is looked up by its opaque id, checked against
the team and channel it came from, the clicker is authorized against the policy in force now,
and the approval is decided by a compare-and-set. The last decision of a pause queues one
resume job; the thread's worker runs it, loading the state from the database.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.runs import CallDecision, RunOutcome
from bot.approvals.authorization import Verdict, may_decide
from bot.approvals.policy import Policy
from bot.slack import blocks
from bot.slack.replies import ThreadReplies
from bot.slack.user_groups import UserGroups
from storage.approvals import (
    decide_approval,
    due_approval_ids,
    get_approval,
    set_approval_message,
)
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, ApprovalStatus, Run, utcnow
from storage.runs import NewApproval, pause_run, with_requesters

log = logging.getLogger(__name__)

REJECTED_WITHOUT_REASON = "A person reviewing this tool call rejected it. Do not run it."
NOT_FOUND = "I can't find that approval request here. It may have been removed."


@dataclass(frozen=True)
class Click:
    approval_id: str
    action: Literal["approve", "reject"]
    user_id: str
    team_id: str
    channel_id: str
    trigger_id: str | None


@dataclass(frozen=True)
class Rejection:
    approval_id: str
    user_id: str
    team_id: str
    reason: str


def expired_message(policy: Policy) -> str:
    hours = policy.expire_after.total_seconds() / 3600
    return (
        f"Nobody approved this tool call within {hours:g} hours, so the request expired "
        "and the call was not run."
    )


def requesters_of(asked: Approval | Run) -> list[str]:
    """Everyone who asked; the starter always counts, even on a row that lists nobody."""
    return with_requesters([asked.requested_by], asked.requesters)


def view_of(approval: Approval) -> blocks.ApprovalView:
    return blocks.ApprovalView(
        approval_id=approval.id,
        tool_name=approval.tool_name,
        arguments=approval.arguments,
        requesters=requesters_of(approval),
        approvers=approval.approvers,
    )


def decision_of(approval: Approval) -> blocks.DecisionView:
    return blocks.DecisionView(
        status=str(approval.status),
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        reason=approval.reason,
        outcome=approval.outcome,
    )


class Approvals:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        replies: ThreadReplies,
        policy: Policy,
        groups: UserGroups,
        kick: Callable[[str], None],
    ) -> None:
        self.db = db
        self.client = client
        self.replies = replies
        self.policy = policy
        self.groups = groups
        self.kick = kick

    # --- a run ends or pauses --------------------------------------------------------------

    async def request(
        self,
        run: Run,
        thread: ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
    ) -> None:
        """Store the pause with one approval per call, then post each call with its buttons."""
        try:
            rows = await self._pause(run, thread, outcome, new_history)
        except LookupError:
            log.warning("run %s paused after it was marked interrupted", run.id)
            return
        for approval in rows:
            text, body = blocks.approval_request(view_of(approval))
            response = await self.client.chat_postMessage(
                channel=thread.channel_id, thread_ts=thread.thread_ts, text=text, blocks=body
            )
            if response.get("ts"):
                await set_approval_message(
                    self.db, approval_id=approval.id, message_ts=str(response["ts"])
                )

    async def _pause(
        self,
        run: Run,
        thread: ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
    ) -> list[Approval]:
        assert outcome.saved is not None
        return await pause_run(
            self.db,
            run_id=run.id,
            saved=outcome.saved,
            new_history=new_history,
            approvals=[
                NewApproval(
                    call_id=call.call_id,
                    tool_name=call.tool_name,
                    arguments=call.arguments,
                    approvers=list(self.policy.approvers_for(call.tool_name)),
                )
                for call in outcome.pending
            ],
            thread=thread,
            requested_by=run.requested_by,
            expire_after=self.policy.expire_after,
        )

    # --- a person clicks -------------------------------------------------------------------

    async def click(self, click: Click) -> None:
        approval = await self._find(click.approval_id, click.team_id, click.channel_id)
        if approval is None:
            await self._tell(click.channel_id, click.user_id, None, NOT_FOUND)
            return
        if approval.status != ApprovalStatus.PENDING:
            await self._tell_already(approval, click.user_id)
            return
        verdict = await self.authorize(click.user_id, approval)
        if not verdict.allowed:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, verdict.reason)
            return
        if click.action == "reject":
            await self._open_reject_modal(approval, click)
            return
        await self._decide(approval, ApprovalStatus.APPROVED, click.user_id, None)

    async def reject(self, rejection: Rejection) -> None:
        """The modal was submitted: check everything again, the approval may have moved on."""
        approval = await get_approval(self.db, rejection.approval_id)
        if approval is None or approval.team_id != rejection.team_id:
            log.warning("rejection for an unknown approval from %s", rejection.user_id)
            return
        if approval.status != ApprovalStatus.PENDING:
            await self._tell_already(approval, rejection.user_id)
            return
        verdict = await self.authorize(rejection.user_id, approval)
        if not verdict.allowed:
            await self._tell(
                approval.channel_id, rejection.user_id, approval.thread_ts, verdict.reason
            )
            return
        await self._decide(
            approval, ApprovalStatus.REJECTED, rejection.user_id, rejection.reason.strip() or None
        )

    async def authorize(self, user_id: str, approval: Approval) -> Verdict:
        approvers = self.policy.approvers_for(approval.tool_name)
        members = await self.groups.members(approvers)
        return may_decide(
            user_id=user_id,
            requesters=requesters_of(approval),
            approvers=approvers,
            group_members=members,
            allow_self_approval=self.policy.allow_self_approval,
        )

    async def is_approver(self, user_id: str) -> bool:
        """An approver of any tool, for actions that concern a run rather than one call."""
        approvers = set(self.policy.approvers)
        for rule in self.policy.rules.values():
            approvers.update(rule.approvers or ())
        members = await self.groups.members(approvers)
        return user_id in approvers or any(user_id in m for m in members.values())

    async def expire_due(self) -> int:
        """Reject, as expired, every approval nobody decided in time; resume their runs."""
        count = 0
        now = utcnow()
        for approval_id in await due_approval_ids(self.db, now=now):
            approval = await get_approval(self.db, approval_id)
            if approval is not None:
                count += await self._decide(approval, ApprovalStatus.EXPIRED, None, None)
        return count

    async def _find(self, approval_id: str, team_id: str, channel_id: str) -> Approval | None:
        approval = await get_approval(self.db, approval_id)
        if approval is None or (approval.team_id, approval.channel_id) != (team_id, channel_id):
            return None
        return approval

    async def _decide(
        self, approval: Approval, status: ApprovalStatus, user_id: str | None, reason: str | None
    ) -> int:
        decision = await decide_approval(
            self.db, approval_id=approval.id, status=status, decided_by=user_id, reason=reason
        )
        if decision is None:
            return 0
        if not decision.won:
            if user_id is not None:
                await self._tell_already(decision.approval, user_id)
            return 0
        if decision.resume_queued:  # the resume need not wait for the message update
            self.kick(ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key)
        await self.show(decision.approval)
        return 1

    async def _open_reject_modal(self, approval: Approval, click: Click) -> None:
        if not click.trigger_id:
            await self._tell(
                approval.channel_id, click.user_id, approval.thread_ts, "Slack sent no trigger id."
            )
            return
        try:
            await self.client.views_open(
                trigger_id=click.trigger_id,
                view=blocks.reject_modal(approval.id, approval.tool_name),
            )
        except SlackApiError as exc:
            log.warning("could not open the reject modal: %s", exc.response.get("error"))

    async def show(self, approval: Approval) -> None:
        """Replace the request with its decision; the buttons go away."""
        if approval.message_ts is None:
            return
        text, body = blocks.approval_decided(view_of(approval), decision_of(approval))
        try:
            await self.client.chat_update(
                channel=approval.channel_id, ts=approval.message_ts, text=text, blocks=body
            )
        except SlackApiError as exc:
            log.warning("could not update approval %s: %s", approval.id, exc.response.get("error"))

    async def _tell_already(self, approval: Approval, user_id: str) -> None:
        line = blocks.decision_line(decision_of(approval))
        text = f"This request was already decided. {line}"
        await self._tell(approval.channel_id, user_id, approval.thread_ts, text)

    async def _tell(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        await self.replies.private(channel=channel, user=user, thread_ts=thread_ts, text=text)

    def decision_for(self, approval: Approval) -> CallDecision:
        """What the resumed run is told about this call."""
        if approval.status == ApprovalStatus.APPROVED:
            return CallDecision(approved=True)
        if approval.status == ApprovalStatus.EXPIRED:
            return CallDecision(approved=False, message=expired_message(self.policy))
        return CallDecision(approved=False, message=approval.reason or REJECTED_WITHOUT_REASON)

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

from bot import blocks
from bot.authorization import Verdict, may_decide
from bot.background import new_ref
from bot.policy import Policy
from bot.runs import AgentRuns, CallDecision, RunOutcome, StateLoadError
from bot.thread_replies import ThreadReplies
from bot.user_groups import UserGroups
from storage import repositories as repo
from storage.database import Database
from storage.models import Approval, ApprovalStatus, Job, JobStatus, Run, RunStatus, utcnow

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


def view_of(approval: Approval) -> blocks.ApprovalView:
    return blocks.ApprovalView(
        approval_id=approval.id,
        tool_name=approval.tool_name,
        arguments=approval.arguments,
        requested_by=approval.requested_by,
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
        runs: AgentRuns,
        policy: Policy,
        groups: UserGroups,
        kick: Callable[[str], None],
    ) -> None:
        self.db = db
        self.client = client
        self.replies = replies
        self.runs = runs
        self.policy = policy
        self.groups = groups
        self.kick = kick

    # --- a run ends or pauses --------------------------------------------------------------

    async def settle(
        self,
        run: Run,
        thread: repo.ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
    ) -> None:
        """Answer in the thread, or store the pause and post one request per call; the run's
        new history items are stored with either."""
        if not outcome.pending or outcome.saved is None:
            if await repo.finish_run(
                self.db, run_id=run.id, status=RunStatus.COMPLETED, new_history=new_history
            ):
                await self.replies.answer(thread, outcome.final_text or "")
            else:
                log.warning("run %s finished after it was marked interrupted", run.id)
            return
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
                await repo.set_approval_message(
                    self.db, approval_id=approval.id, message_ts=str(response["ts"])
                )

    async def _pause(
        self,
        run: Run,
        thread: repo.ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
    ) -> list[Approval]:
        assert outcome.saved is not None
        return await repo.pause_run(
            self.db,
            run_id=run.id,
            saved=outcome.saved,
            new_history=new_history,
            approvals=[
                repo.NewApproval(
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
        approval = await repo.get_approval(self.db, rejection.approval_id)
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
            requested_by=approval.requested_by,
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
        for approval_id in await repo.due_approval_ids(self.db, now=now):
            approval = await repo.get_approval(self.db, approval_id)
            if approval is not None:
                count += await self._decide(approval, ApprovalStatus.EXPIRED, None, None)
        return count

    async def _find(self, approval_id: str, team_id: str, channel_id: str) -> Approval | None:
        approval = await repo.get_approval(self.db, approval_id)
        if approval is None or (approval.team_id, approval.channel_id) != (team_id, channel_id):
            return None
        return approval

    async def _decide(
        self, approval: Approval, status: ApprovalStatus, user_id: str | None, reason: str | None
    ) -> int:
        decision = await repo.decide_approval(
            self.db, approval_id=approval.id, status=status, decided_by=user_id, reason=reason
        )
        if decision is None:
            return 0
        if not decision.won:
            if user_id is not None:
                await self._tell_already(decision.approval, user_id)
            return 0
        if decision.resume_queued:  # the resume need not wait for the message update
            self.kick(repo.ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key)
        await self._show(decision.approval)
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

    async def _show(self, approval: Approval) -> None:
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

    # --- the thread's worker resumes -------------------------------------------------------

    async def handle_resume(self, job: Job, begun: repo.BegunResume | None) -> JobStatus:
        """`begun` is the run that the worker's step claimed for the job, if it was first."""
        if begun is None:
            return JobStatus.DONE  # already resumed by somebody else
        run, approvals, deferred = begun.run, begun.approvals, begun.deferred
        thread = repo.ThreadRef.from_key(job.thread_key)
        if run.state is None:
            await self._resume_failed(run, thread, deferred, "The paused run is gone")
            return JobStatus.FAILED
        decisions = {a.call_id: self._call_decision(a) for a in approvals}
        history = self.runs.history(job.thread_key, stored=begun.history)
        try:
            outcome, refused = await self.runs.resume(
                run.state,
                decisions=decisions,
                new_messages=[message.text or "" for message in deferred],
                history=history,
            )
        except StateLoadError as exc:
            await self._resume_failed(run, thread, deferred, f"I couldn't resume the run: {exc}")
            return JobStatus.FAILED
        except Exception:
            await self._resume_failed(
                run, thread, deferred, "The run failed after the decision", history.new_rows()
            )
            return JobStatus.FAILED
        for index, message in enumerate(deferred):
            assert message.id is not None
            if index not in refused:
                await repo.finish_job(self.db, job_id=message.id, status=JobStatus.DONE)
        await repo.requeue_jobs(self.db, job_ids=[deferred[i].id or 0 for i in refused])
        # The answer goes out first; the requests' messages show what ran right after.
        await self.settle(run, thread, outcome, history.new_rows())
        ran = await repo.approvals_of_run(self.db, run_id=run.id, generation=run.generation)
        for approval in ran:
            if approval.status == ApprovalStatus.APPROVED and approval.outcome is not None:
                await self._show(approval)
        return JobStatus.DONE

    def _call_decision(self, approval: Approval) -> CallDecision:
        if approval.status == ApprovalStatus.APPROVED:
            return CallDecision(approved=True)
        if approval.status == ApprovalStatus.EXPIRED:
            return CallDecision(approved=False, message=expired_message(self.policy))
        return CallDecision(approved=False, message=approval.reason or REJECTED_WITHOUT_REASON)

    async def _resume_failed(
        self,
        run: Run,
        thread: repo.ThreadRef,
        deferred: list[Job],
        what: str,
        new_history: Sequence[str] = (),
    ) -> None:
        """The decisions stay on record and the run ends; nothing that ran is run again."""
        ref = new_ref()
        log.error("resume of run %s failed (ref %s)", run.id, ref, exc_info=True)
        await repo.finish_run(
            self.db,
            run_id=run.id,
            status=RunStatus.FAILED,
            error_ref=ref,
            new_history=new_history,
        )
        await repo.requeue_jobs(self.db, job_ids=[job.id for job in deferred if job.id])
        await self.replies.failure(thread, f"{what}; the run has stopped.", ref)

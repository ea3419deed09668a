"""What happens when a run pauses for approval, and when Approve or Reject is clicked.

Pause: the state and one approval per call are stored in one transaction, then each call is
posted with its own buttons. Click: the approval is looked up by its opaque id, checked against
the team and channel it came from, and the clicker is authorized (against the approvers the
deciding rule named, or the tool's approvers in force now, and once the call was escalated
those it was escalated to). An approval is a vote: one per
person, and the vote that reaches the call's quorum decides it by a compare-and-set; a
rejection decides it at once. The last decision of a pause queues one resume job; the thread's
worker runs it, loading the state from the database.

Edit: an approver changes the call's arguments in a modal, checked against the tool's schema,
and the policy decides the edited call again. If it needs more than before (another rule, more
approvals, other approvers) the call waits again under what it needs now, and the editor's
approval counts only if they may give it there; otherwise the edit is their approval.

Where a click comes from: the card in its thread, its copy in the approvals channel
(`mirror_to`), or the clicker's App Home. A click from a channel must come from the call's
own channel or its mirror, and of its team; a Home click has no channel, so only its team is
checked. Either way the clicker is authorized here, and the call is decided by the same
compare-and-set. A Home click has no channel to answer in privately either: what it is told
goes by direct message (a Home view is redrawn from the database the next time it opens).

Reminders and escalation: the sweep takes each step of a waiting call once (storage.
approval_steps), owing a DM to each person it tells and a mention in the thread to each group.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import log_context
from bot.agent.runs import CallDecision, RunOutcome
from bot.approvals import editing
from bot.approvals.authorization import Verdict, is_user_group, may_decide
from bot.approvals.deciding import CallPolicies
from bot.approvals.pausing import StoredPause, store_pause
from bot.approvals.policy import CallPolicy, Policy
from bot.metrics import Metrics
from bot.runtime.outbox import Claiming, Outbox
from bot.slack import blocks, cards
from bot.slack.replies import ThreadReplies
from bot.slack.user_groups import UserGroups
from bot.slack.workspace_scope import speaking_for
from bot.tracing import Tracing
from storage import approval_steps, decision_log
from storage.approval_steps import Step
from storage.approvals import (
    EditOutcome,
    Requirement,
    Vote,
    VoteOutcome,
    decide_approval,
    due_approval_ids,
    edit_arguments,
    get_approval,
    vote_to_approve,
)
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, ApprovalStatus, Run, utcnow
from storage.outbox import Claimant, Owed
from storage.runs import requesters_of

log = logging.getLogger(__name__)


class _Decided(Claiming, Protocol):
    """A stored decision or vote: what it claimed, and whether it queued the resume."""

    @property
    def resume_queued(self) -> bool: ...


DecidedT = TypeVar("DecidedT", bound=_Decided)

REJECTED_WITHOUT_REASON = "A person reviewing this tool call rejected it. Do not run it."
NOT_FOUND = "I can't find that approval request here. It may have been removed."
ALREADY_APPROVED = "You already approved this; it needs another approver."
NOT_EDITABLE = "Editing is not offered for this call."
EDIT_AFTER_APPROVAL = (
    "Somebody already approved this call's arguments as they are, so they cannot be edited "
    "now. Reject it and ask again if they are wrong."
)

Schemas = Callable[[str], Mapping[str, Any] | None]

# Set for the task that handles a click from the App Home: it is answered by direct message.
_from_home: ContextVar[bool] = ContextVar("threadgate_click_from_home", default=False)


@dataclass(frozen=True)
class Click:
    approval_id: str
    action: Literal["approve", "reject", "edit"]
    user_id: str
    team_id: str
    channel_id: str | None  # None: clicked in the App Home, which has no channel
    trigger_id: str | None

    @property
    def from_home(self) -> bool:
        return self.channel_id is None


@dataclass(frozen=True)
class EditSubmission:
    approval_id: str
    user_id: str
    team_id: str
    values: Mapping[str, str | None]  # by block id, as submitted
    from_home: bool = False  # the modal was opened from the App Home


@dataclass(frozen=True)
class Rejection:
    approval_id: str
    user_id: str
    team_id: str
    reason: str
    from_home: bool = False  # the modal was opened from the App Home


def expired_message(policy: Policy) -> str:
    hours = policy.expire_after.total_seconds() / 3600
    return (
        f"Nobody approved this tool call within {hours:g} hours, so the request expired "
        "and the call was not run."
    )


class Approvals:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        replies: ThreadReplies,
        outbox: Outbox,
        policies: CallPolicies,
        groups: UserGroups,
        kick: Callable[[str], None],
        schemas: Schemas = lambda _name: None,
        mirror_to: str | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing()
        self.db = db
        self.client = client
        self.replies = replies
        self.outbox = outbox
        self.policies = policies
        self.groups = groups
        self.kick = kick
        self.schemas = schemas
        self.mirror_to = mirror_to
        # Told of every approval that was requested or changed (the App Home redraws the
        # views that listed it); set by the wiring.
        self.on_change: Callable[[Sequence[Approval]], None] = lambda _approvals: None

    # --- a run ends or pauses --------------------------------------------------------------

    async def request(
        self,
        run: Run,
        thread: ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
        *,
        before: Sequence[Owed] = (),
    ) -> list[CallPolicy]:
        """Store the pause with one approval per call, with the cards it owes the thread
        (after `before`), then deliver them. Returns the policy's decisions of the calls, or
        nothing when the run was interrupted meanwhile."""

        async def pause(by: Claimant) -> StoredPause | None:
            return await store_pause(
                self.db,
                self.policies,
                run=run,
                thread=thread,
                outcome=outcome,
                new_history=new_history,
                owed=before,
                by=by,
                mirror_to=self.mirror_to,
                claim=True,
            )

        paused = await self.outbox.after(thread.key, pause)
        if paused is None:
            return []
        self.metrics.requested(call.tool_name for call in outcome.pending)
        self.on_change(paused.approvals)
        return paused.decisions

    # --- a person clicks -------------------------------------------------------------------

    def answering(self, click: Click) -> None:
        """What this task tells the clicker goes where the click came from."""
        _from_home.set(click.from_home)

    async def click(self, click: Click) -> None:
        self.answering(click)
        with log_context.bound(approval_id=click.approval_id, channel=click.channel_id):
            await self._click(click)

    async def _click(self, click: Click) -> None:
        approval = await self._find(click.approval_id, click.team_id, click.channel_id)
        if approval is None:
            await self._tell(click.channel_id or "", click.user_id, None, NOT_FOUND)
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
        if click.action == "edit":
            await self._open_edit_modal(approval, click)
            return
        await self._approve(approval, click.user_id)

    async def edit_errors(self, edit: EditSubmission) -> dict[str, str]:
        """What is wrong with the submitted arguments, by block id, for the modal to show
        before it closes. Whatever else stops the edit (the call was decided, the person may
        not edit it) is said after the modal closed, by `edit`."""
        approval = await get_approval(self.db, edit.approval_id)
        if approval is None or approval.team_id != edit.team_id:
            return {}
        if approval.status != ApprovalStatus.PENDING or not approval.allow_edit:
            return {}
        try:
            _arguments, errors = self._read_edit(approval, edit)
        except editing.NotEditable:
            return {}
        return errors

    async def edit(self, edit: EditSubmission) -> None:
        """The edit modal was submitted with valid arguments: check everything again, decide
        the edited call, and store it with what it needs now."""
        with log_context.bound(approval_id=edit.approval_id):
            await self._edit(edit)

    async def _edit(self, edit: EditSubmission) -> None:
        _from_home.set(edit.from_home)
        approval = await get_approval(self.db, edit.approval_id)
        if approval is None or approval.team_id != edit.team_id:
            log.warning("edit of an unknown approval from %s", edit.user_id)
            return
        if approval.status != ApprovalStatus.PENDING:
            await self._tell_already(approval, edit.user_id)
            return
        verdict = await self.authorize(edit.user_id, approval)
        if not verdict.allowed:
            await self._tell(approval.channel_id, edit.user_id, approval.thread_ts, verdict.reason)
            return
        if not approval.allow_edit:
            await self._tell(approval.channel_id, edit.user_id, approval.thread_ts, NOT_EDITABLE)
            return
        try:
            arguments, errors = self._read_edit(approval, edit)
        except editing.NotEditable as exc:
            await self._tell_not_editable(approval, edit.user_id, exc)
            return
        if errors:  # the modal checked these; the tool's schema may have changed since
            text = "The edit was not saved: " + blocks.escape("; ".join(errors.values()), 2000)
            await self._tell(approval.channel_id, edit.user_id, approval.thread_ts, text)
            return
        if json.loads(approval.edited_arguments or approval.arguments) == arguments:
            await self._approve(approval, edit.user_id)  # nothing changed: a plain approval
            return
        await self._apply_edit(approval, edit.user_id, arguments)

    async def _apply_edit(
        self, approval: Approval, user_id: str, arguments: dict[str, Any]
    ) -> None:
        decided = await self.policies.decide(
            approval.tool_name,
            arguments,
            channel_id=approval.channel_id,
            run_id=approval.run_id,
        )
        stricter = decided.required and (
            decided.rule_index,
            decided.approvals_needed,
            tuple(decided.approvers),
        ) != (approval.rule_index, approval.approvals_needed, self._named_approvers(approval))
        # An edit never lowers what the call needs: a call that now needs no approval, or
        # less, still waits for what it needed as it was asked.
        requirement = (
            Requirement(
                approvers=list(decided.approvers),
                approvals_needed=decided.approvals_needed,
                rule_index=decided.rule_index,
                rule_label=decided.rule_label,
                allow_edit=decided.allow_edit,
            )
            if stricter
            else None
        )
        verdict = await self.authorize(user_id, approval, under=requirement)
        result = await edit_arguments(
            self.db,
            approval_id=approval.id,
            run_id=approval.run_id,
            user_id=user_id,
            arguments=json.dumps(arguments, ensure_ascii=False),
            requirement=requirement,
            vote=verdict.allowed,
            by=self.outbox.claimant,
        )
        if result is None:
            await self._tell(approval.channel_id, user_id, approval.thread_ts, NOT_FOUND)
            return
        if result.outcome == EditOutcome.TOO_LATE:
            await self._tell_already(result.approval, user_id, result.approvers)
            return
        if result.outcome == EditOutcome.VOTED:
            await self._tell(approval.channel_id, user_id, approval.thread_ts, EDIT_AFTER_APPROVAL)
            return
        edited = result.approval
        if result.vote is not None:
            await self._counted(edited, user_id, result.vote)
            return
        await self.outbox.deliver(
            ThreadRef(edited.team_id, edited.channel_id, edited.thread_ts).key
        )
        self.on_change([edited])
        text = (
            "Your edit is saved, and the call now waits for approval under what it needs with "
            f"these arguments ({decided.rule_label}). Your approval does not count there: "
            f"{verdict.reason}"
        )
        await self._tell(edited.channel_id, user_id, edited.thread_ts, blocks.escape(text, 3000))

    def _read_edit(
        self, approval: Approval, edit: EditSubmission
    ) -> tuple[dict[str, Any], dict[str, str]]:
        schema = self.schemas(approval.tool_name)
        if schema is None:
            raise editing.NotEditable("its tool is no longer loaded")
        fields = editing.fields_of(approval.edited_arguments or approval.arguments)
        return editing.read_fields(fields, edit.values, schema)

    async def _open_edit_modal(self, approval: Approval, click: Click) -> None:
        if not approval.allow_edit:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, NOT_EDITABLE)
            return
        try:
            if self.schemas(approval.tool_name) is None:
                raise editing.NotEditable("its tool is no longer loaded")
            fields = editing.fields_of(approval.edited_arguments or approval.arguments)
        except editing.NotEditable as exc:
            await self._tell_not_editable(approval, click.user_id, exc)
            return
        if not click.trigger_id:
            await self._tell(
                approval.channel_id, click.user_id, approval.thread_ts, "Slack sent no trigger id."
            )
            return
        shown = [blocks.ArgumentField(f.block_id, f.name, f.value) for f in fields]
        try:
            await self.client.views_open(
                trigger_id=click.trigger_id,
                view=blocks.edit_modal(
                    approval.id, approval.tool_name, shown, from_home=click.from_home
                ),
            )
        except SlackApiError as exc:
            log.warning("could not open the edit modal: %s", exc.response.get("error"))

    async def _tell_not_editable(
        self, approval: Approval, user_id: str, exc: editing.NotEditable
    ) -> None:
        text = f"This call cannot be edited: {exc}. Approve or reject it as it is."
        await self._tell(approval.channel_id, user_id, approval.thread_ts, text)

    async def reject(self, rejection: Rejection) -> None:
        """The modal was submitted: check everything again, the approval may have moved on."""
        with log_context.bound(approval_id=rejection.approval_id):
            await self._reject(rejection)

    async def _reject(self, rejection: Rejection) -> None:
        _from_home.set(rejection.from_home)
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

    async def authorize(
        self, user_id: str, approval: Approval, *, under: Requirement | None = None
    ) -> Verdict:
        """May this person decide the call, as it stands or `under` what an edit would make
        it need?"""
        approvers = (
            self._escalated(approval, tuple(under.approvers))
            if under
            else self.approvers_of(approval)
        )
        members = await self.groups.members(approvers)
        return may_decide(
            user_id=user_id,
            requesters=requesters_of(approval),
            approvers=approvers,
            group_members=members,
            allow_self_approval=self.policy.allow_self_approval,
            approvals_needed=under.approvals_needed if under else approval.approvals_needed,
        )

    def approvers_of(self, approval: Approval) -> tuple[str, ...]:
        """Who may decide the call now: its named approvers, and once it was escalated (not
        before), those it was escalated to."""
        return self._escalated(approval, self._named_approvers(approval))

    def _named_approvers(self, approval: Approval) -> tuple[str, ...]:
        """A rule named its approvers from what the call asked for, the channel and who asked:
        those stored with the approval decide it. Otherwise the tool's approvers in force now
        do, so removing someone from a tool's table takes effect on cards already posted."""
        if approval.rule_index is not None:
            return tuple(approval.approvers)
        return self.policy.approvers_for(approval.tool_name)

    @staticmethod
    def _escalated(approval: Approval, approvers: tuple[str, ...]) -> tuple[str, ...]:
        if approval.escalated_at is None or not approval.escalate_to:
            return approvers
        return tuple(dict.fromkeys([*approvers, *approval.escalate_to]))

    async def is_approver(self, user_id: str) -> bool:
        """An approver of any tool or rule, for actions that concern a run rather than one
        call."""
        approvers = set(self.policy.every_approver())
        members = await self.groups.members(approvers)
        return user_id in approvers or any(user_id in m for m in members.values())

    @property
    def policy(self) -> Policy:
        """The policy of the workspace the work at hand is for."""
        return self.policies.policy

    async def take_due_steps(self) -> tuple[int, int]:
        """Remind, then escalate, every waiting call whose time for it came; each once, by
        whichever process gets there first. Returns how many were reminded and escalated."""
        counts = []
        for step in (Step.REMIND, Step.ESCALATE):
            count = 0
            now = utcnow()
            for approval_id in await approval_steps.due_ids(self.db, step, now=now):
                taken = await approval_steps.take(
                    self.db,
                    step,
                    approval_id=approval_id,
                    now=now,
                    recipients=self._recipients(step),
                    by=self.outbox.claimant,
                )
                if taken is not None:
                    count += 1
                    counter = (
                        self.metrics.approval_reminders
                        if step == Step.REMIND
                        else self.metrics.approval_escalations
                    )
                    counter.inc()
                    approval = taken[0]
                    await self.outbox.deliver(
                        ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts).key
                    )
            counts.append(count)
        return counts[0], counts[1]

    def _recipients(self, step: Step) -> approval_steps.Recipients:
        """A reminder goes to each approver who has not approved yet and did not ask for the
        call; an escalation to each it adds. A user group is told as one, in the thread."""

        def recipients(approval: Approval, voted: Sequence[str]) -> list[str]:
            with speaking_for(approval.team_id, approval.enterprise_id):
                ids = (
                    self.approvers_of(approval)
                    if step == Step.REMIND
                    else tuple(approval.escalate_to or ())
                )
            skip = {*voted, *requesters_of(approval)}
            return [i for i in ids if is_user_group(i) or i not in skip]

        return recipients

    async def expire_due(self) -> int:
        """Reject, as expired, every approval nobody decided in time; resume their runs."""
        count = 0
        now = utcnow()
        for approval_id in await due_approval_ids(self.db, now=now):
            approval = await get_approval(self.db, approval_id)
            if approval is not None:
                count += await self._decide(approval, ApprovalStatus.EXPIRED, None, None)
        return count

    async def _find(
        self, approval_id: str, team_id: str, channel_id: str | None
    ) -> Approval | None:
        """The approval a click names, if the click came from where the call is shown: its
        team always, and its thread's channel or its mirror's (None: the App Home)."""
        approval = await get_approval(self.db, approval_id)
        if approval is None or approval.team_id != team_id:
            return None
        shown_in = {approval.channel_id, approval.mirror_channel_id} - {None}
        if channel_id is not None and channel_id not in shown_in:
            return None
        return approval

    async def _decide(
        self, approval: Approval, status: ApprovalStatus, user_id: str | None, reason: str | None
    ) -> int:
        with speaking_for(approval.team_id, approval.enterprise_id):
            return await self._decide_in_workspace(approval, status, user_id, reason)

    async def _decide_in_workspace(
        self, approval: Approval, status: ApprovalStatus, user_id: str | None, reason: str | None
    ) -> int:
        thread = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts)
        decision = await self._stored_then_delivered(
            thread,
            lambda by: decide_approval(
                self.db,
                approval_id=approval.id,
                run_id=approval.run_id,
                status=status,
                decided_by=user_id,
                reason=reason,
                by=by,
                claim=True,
            ),
        )
        if decision is None:
            return 0
        if not decision.won:
            if user_id is not None:
                await self._tell_already(decision.approval, user_id)
            return 0
        self._observe_decided(approval, status)
        self.on_change([decision.approval])
        return 1

    def _resume_queued(self, thread: ThreadRef, queued: bool) -> None:
        """Wake the thread's worker as soon as the decision is stored: the resume need not
        wait for the card's update."""
        if queued:
            self.metrics.jobs_queued.labels(kind="resume").inc()
            self.kick(thread.key)

    async def _stored_then_delivered(
        self, thread: ThreadRef, store: Callable[[Claimant], Awaitable[DecidedT | None]]
    ) -> DecidedT | None:
        """Store a decision or a vote with the claim of what it owes the thread, wake the
        resume it queued, then deliver the claim (`Outbox.after`)."""

        async def stored(by: Claimant) -> DecidedT | None:
            decided = await store(by)
            if decided is not None:
                self._resume_queued(thread, decided.resume_queued)
            return decided

        return await self.outbox.after(thread.key, stored)

    async def _approve(self, approval: Approval, user_id: str) -> None:
        """The vote, and the claim of what it owes the thread, are one transaction; the card
        is delivered right after it, while the resume (if the vote queued it) goes on."""
        thread = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts)
        counted = await self._stored_then_delivered(
            thread,
            lambda by: vote_to_approve(
                self.db,
                approval_id=approval.id,
                run_id=approval.run_id,
                user_id=user_id,
                by=by,
                claim=True,
            ),
        )
        if counted is None:
            await self._tell(approval.channel_id, user_id, approval.thread_ts, NOT_FOUND)
            return
        await self._counted(approval, user_id, counted, delivered=True)

    async def _counted(
        self, approval: Approval, user_id: str, vote: Vote, *, delivered: bool = False
    ) -> None:
        """Say what a vote did, to whom it concerns: the voter, privately, when it changed
        nothing; the thread otherwise (the resume, the card), unless `delivered` says the
        vote's claim was delivered already."""
        if vote.outcome == VoteOutcome.TOO_LATE:
            await self._tell_already(vote.approval, user_id, vote.approvers)
            return
        if vote.outcome == VoteOutcome.REPEATED:
            await self._tell(approval.channel_id, user_id, approval.thread_ts, ALREADY_APPROVED)
            return
        if vote.outcome == VoteOutcome.DECIDED:
            self._observe_decided(approval, ApprovalStatus.APPROVED)
        if not delivered:
            thread = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts)
            self._resume_queued(thread, vote.resume_queued)
            await self.outbox.deliver(thread.key)
        self.on_change([vote.approval])

    def _observe_decided(self, approval: Approval, status: ApprovalStatus) -> None:
        """The wait from request to decision, as a metric and as a span ending now."""
        self.metrics.decided(approval.tool_name, status.value, requested_at=approval.created_at)
        self.tracing.finished_span(
            "threadgate.approval_wait",
            started=approval.created_at,
            tool=approval.tool_name,
            approval_id=approval.id,
            run_id=approval.run_id,
            decision=status.value,
        )

    async def _open_reject_modal(self, approval: Approval, click: Click) -> None:
        if not click.trigger_id:
            await self._tell(
                approval.channel_id, click.user_id, approval.thread_ts, "Slack sent no trigger id."
            )
            return
        try:
            await self.client.views_open(
                trigger_id=click.trigger_id,
                view=blocks.reject_modal(
                    approval.id, approval.tool_name, from_home=click.from_home
                ),
            )
        except SlackApiError as exc:
            log.warning("could not open the reject modal: %s", exc.response.get("error"))

    async def _tell_already(
        self, approval: Approval, user_id: str, approved_by: Sequence[str] | None = None
    ) -> None:
        if approved_by is None:
            approved_by = await decision_log.approved_by(self.db, approval.id)
        line = blocks.decision_line(cards.decision_of(approval, approved_by))
        text = f"This request was already decided. {line}"
        await self._tell(approval.channel_id, user_id, approval.thread_ts, text)

    async def _tell(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        if _from_home.get() or not channel:
            await self.replies.direct(user=user, text=text)
            return
        await self.replies.private(channel=channel, user=user, thread_ts=thread_ts, text=text)

    def decision_for(self, approval: Approval) -> CallDecision:
        return call_decision(approval, self.policy)


def call_decision(approval: Approval, policy: Policy) -> CallDecision:
    """What the resumed run is told about this call."""
    if approval.status == ApprovalStatus.APPROVED:
        return CallDecision(approved=True)
    if approval.status == ApprovalStatus.EXPIRED:
        return CallDecision(approved=False, message=expired_message(policy))
    return CallDecision(approved=False, message=approval.reason or REJECTED_WITHOUT_REASON)

"""Approve for this thread: one approver's click covers later calls of the same tool that the
same rule governs in the same thread, until its time ends or someone revokes it.

A thread approval is narrow on purpose: another thread, another tool, or a call another rule
governs (a large refund after small ones were approved) gets a card as before, and so does a
call whose policy failed closed. Each call it lets through is still decided by the policy
first, stored as an approved call the execution ledger claims (so it runs at most once), and
posted in the thread with a Revoke button. Revoking is for the approvers of that tool or rule
and for the people who asked; it takes effect for the next call.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.approvals.approvals import NOT_FOUND, Approvals, Click
from bot.approvals.authorization import is_user_group
from bot.approvals.policy import CallPolicy
from bot.runtime.outbox import Outbox
from bot.slack import blocks
from storage import thread_approvals
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import ApprovalStatus, ThreadApproval
from storage.thread_approvals import CoveredCall, GiveOutcome, RevokeOutcome

NOT_OFFERED = "This call cannot be approved for the whole thread; use Approve instead."
NOT_YOURS_TO_REVOKE = (
    "Only the approvers of this tool (or rule) and the people who asked for the call may "
    "revoke this thread approval."
)
REVOKE_NOT_FOUND = "I can't find that thread approval here. It may have been removed."


@dataclass(frozen=True)
class RevokeClick:
    thread_approval_id: str
    user_id: str
    team_id: str
    channel_id: str


class ThreadApprovals:
    def __init__(self, db: Database, *, approvals: Approvals, outbox: Outbox) -> None:
        self.db = db
        self.approvals = approvals
        self.outbox = outbox

    # --- "Approve for this thread" ----------------------------------------------------------

    async def approve(self, click: Click) -> None:
        """Authorized exactly as Approve is, at click time; the call's own approval and the
        thread approval are one compare-and-set."""
        approvals = self.approvals
        approvals.answering(click)
        approval = await approvals._find(click.approval_id, click.team_id, click.channel_id)
        if approval is None:
            await self._tell(click.channel_id or "", click.user_id, None, NOT_FOUND)
            return
        if approval.status != ApprovalStatus.PENDING:
            await approvals._tell_already(approval, click.user_id)
            return
        if not approval.allow_for_thread:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, NOT_OFFERED)
            return
        verdict = await approvals.authorize(click.user_id, approval)
        if not verdict.allowed:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, verdict.reason)
            return
        given = await thread_approvals.give(
            self.db,
            approval_id=approval.id,
            run_id=approval.run_id,
            user_id=click.user_id,
            by=self.outbox.claimant,
        )
        if given is None:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, NOT_FOUND)
            return
        if given.outcome == GiveOutcome.TOO_LATE:
            await approvals._tell_already(given.approval, click.user_id)
            return
        if given.outcome == GiveOutcome.NOT_OFFERED:
            await self._tell(approval.channel_id, click.user_id, approval.thread_ts, NOT_OFFERED)
            return
        thread = ThreadRef(approval.team_id, approval.channel_id, approval.thread_ts)
        if given.resume_queued:
            approvals.kick(thread.key)
        await self.outbox.deliver(thread.key)
        approvals.on_change([given.approval])

    # --- a later call -----------------------------------------------------------------------

    async def covers(
        self,
        context: Mapping[str, Any],
        *,
        call_id: str,
        tool_name: str,
        arguments: Mapping[str, Any],
        policy: CallPolicy,
    ) -> bool:
        """Does an active thread approval let this call run without a card? Only for a call
        the policy says needs one approver, read without failing closed, in a known thread,
        and (with self-approval off) not asked for by whoever gave the thread approval."""
        if not policy.required or policy.failed_closed or policy.approvals_needed != 1:
            return False
        where = [context.get(key) for key in ("team_id", "channel_id", "thread_ts", "run_id")]
        if not all(isinstance(value, str) and value for value in where):
            return False
        team_id, channel_id, thread_ts, run_id = (str(value) for value in where)
        thread = ThreadRef(team_id, channel_id, thread_ts)
        covered = await thread_approvals.cover(
            self.db,
            CoveredCall(
                run_id=run_id,
                call_id=call_id,
                thread=thread,
                tool_name=tool_name,
                arguments=json.dumps(arguments, ensure_ascii=False),
                rule_index=policy.rule_index,
                rule_label=policy.rule_label,
                approvers=policy.approvers,
                allow_self_approval=self.approvals.policy.allow_self_approval,
            ),
            by=self.outbox.claimant,
        )
        if covered is None:
            return False
        if covered.new:
            await self.outbox.deliver(thread.key)
        return True

    # --- Revoke -------------------------------------------------------------------------------

    async def revoke(self, click: RevokeClick) -> None:
        found = await thread_approvals.get_thread_approval(self.db, click.thread_approval_id)
        if found is None or (found.team_id, found.channel_id) != (click.team_id, click.channel_id):
            await self._tell(click.channel_id, click.user_id, None, REVOKE_NOT_FOUND)
            return
        if not await self.may_revoke(click.user_id, found):
            await self._tell(found.channel_id, click.user_id, found.thread_ts, NOT_YOURS_TO_REVOKE)
            return
        revocation = await thread_approvals.revoke(
            self.db,
            thread_approval_id=found.id,
            user_id=click.user_id,
            by=self.outbox.claimant,
        )
        if revocation is None:
            await self._tell(found.channel_id, click.user_id, found.thread_ts, REVOKE_NOT_FOUND)
            return
        done = revocation.thread_approval
        if revocation.outcome == RevokeOutcome.ALREADY_REVOKED:
            who = blocks.mention(done.revoked_by) if done.revoked_by else "somebody"
            text = f"This thread approval was already revoked by {who}."
            await self._tell(done.channel_id, click.user_id, done.thread_ts, text)
            return
        if revocation.outcome == RevokeOutcome.ENDED:
            text = f"This thread approval already ended on {blocks.slack_date(done.expires_at)}."
            await self._tell(done.channel_id, click.user_id, done.thread_ts, text)
            return
        await self.outbox.deliver(ThreadRef(done.team_id, done.channel_id, done.thread_ts).key)

    async def may_revoke(self, user_id: str, thread_approval: ThreadApproval) -> bool:
        """The people who asked, and the approvers of the tool or rule: those stored with it,
        and for a tool's table also those in force now. Revoking only ever takes a permission
        away, so it is open to anyone who could have given it, then or now."""
        if user_id in thread_approval.requesters:
            return True
        approvers = list(thread_approval.approvers)
        if thread_approval.rule_index is None:
            approvers.extend(self.approvals.policy.approvers_for(thread_approval.tool_name))
        if user_id in approvers:
            return True
        groups = [slack_id for slack_id in dict.fromkeys(approvers) if is_user_group(slack_id)]
        if not groups:
            return False
        members = await self.approvals.groups.members(groups)
        return any(user_id in members.get(group, ()) for group in groups)

    async def _tell(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        await self.approvals._tell(channel, user, thread_ts, text)

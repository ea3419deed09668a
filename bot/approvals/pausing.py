"""A run paused on calls that need a person: each call decided by the policy and stored as one
approval, with the run's state, in one transaction.

Whichever surface then asks the people (Slack cards, the console's prompt) stores the pause
here, so the approvals it decides are the same rows with the same rules."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.agent.runs import RunOutcome
from bot.approvals.deciding import CallPolicies
from bot.approvals.policy import CallPolicy
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Approval, Run
from storage.outbox import Claimant, Delivery, Owed
from storage.runs import NewApproval, pause_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPause:
    decisions: list[CallPolicy]  # the policy's, one per call, in the calls' order
    approvals: list[Approval]  # one per call, in the calls' order
    claimed: list[Delivery] | None  # with `claim`: what the thread is owed, claimed


async def store_pause(
    db: Database,
    policies: CallPolicies,
    *,
    run: Run,
    thread: ThreadRef,
    outcome: RunOutcome,
    new_history: Sequence[str],
    owed: Sequence[Owed],
    by: Claimant,
    mirror_to: str | None = None,
    claim: bool = False,
) -> StoredPause | None:
    """Each call is decided again here, as the SDK decided it, for the rule and approvers to
    record with it; `mirror_to` is the approvals channel its cards are copied to, if any.
    None when the run is no longer running (it was interrupted meanwhile)."""
    assert outcome.saved is not None
    decided = [
        await policies.decide(
            call.tool_name, call.arguments, channel_id=thread.channel_id, run_id=run.id
        )
        for call in outcome.pending
    ]
    try:
        paused = await pause_run(
            db,
            run_id=run.id,
            saved=outcome.saved,
            new_history=new_history,
            approvals=[
                NewApproval(
                    call_id=call.call_id,
                    tool_name=call.tool_name,
                    arguments=call.arguments,
                    approvers=list(policy.approvers),
                    # The call's quorum, stored with it: a config change never moves the
                    # goalposts of a call already waiting.
                    approvals_needed=policy.approvals_needed,
                    rule_index=policy.rule_index,
                    rule_label=policy.rule_label,
                    allow_for_thread=policy.allow_for_thread
                    and policy.approvals_needed == 1
                    and not policy.failed_closed,
                    thread_approval_ttl=policy.thread_approval_ttl,
                    allow_edit=policy.allow_edit,
                    mirror_channel_id=mirror_to,
                    # Fixed with the call, as its approvers are: the card and the sweep read
                    # the row long after the config was read.
                    remind_after=policy.steps.remind_after,
                    escalate_after=policy.steps.escalate_after,
                    escalate_to=list(policy.steps.escalate_to or ()),
                )
                for call, policy in zip(outcome.pending, decided, strict=True)
            ],
            thread=thread,
            requested_by=run.requested_by,
            expire_after=policies.policy.expire_after,
            owed=owed,
            by=by,
            claim=claim,
        )
    except LookupError:
        log.warning("run %s paused after it was marked interrupted", run.id)
        return None
    return StoredPause(decided, paused.approvals, paused.claimed)

"""May this person decide this approval? Pure: group membership is looked up by the caller."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def is_user_group(slack_id: str) -> bool:
    return slack_id.startswith("S")


def may_decide(
    *,
    user_id: str,
    requesters: Collection[str],
    approvers: Sequence[str],
    group_members: Mapping[str, Collection[str]],
    allow_self_approval: bool,
    approvals_needed: int = 1,
) -> Verdict:
    """Self-approval is checked first: being an approver, directly or through a group, does not
    let you approve a call you asked for. Everyone whose words reached the run asked for it."""
    if not approvers:
        return Verdict(
            False,
            "No approvers are configured for this tool, so nobody can approve it. "
            "Ask an admin to set `approvers` under `[approvals]`.",
        )
    if user_id in requesters and not allow_self_approval:
        return Verdict(
            False,
            "You are one of the people who asked for this call (your words reached the run), "
            "and self-approval is turned off.",
        )
    if user_id in requesters and approvals_needed > 1:
        # Two people means two people besides whoever asked.
        return Verdict(
            False,
            "You are one of the people who asked for this call (your words reached the run), "
            f"and it needs {approvals_needed} approvals from people who did not ask.",
        )
    for approver in approvers:
        if approver == user_id:
            return Verdict(True)
        if is_user_group(approver) and user_id in group_members.get(approver, ()):
            return Verdict(True)
    return Verdict(False, "You are not one of the approvers for this tool.")

"""Deciding a call with what its rules ask about looked up: who asked, and who is in a group.

The policy itself is pure; this is the one place that reads the run's requesters (from the
database, as four-eyes defines them) and user-group members (from Slack, cached) for it, and
only when a rule for the tool asks about requesters.
"""

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from bot.approvals.policy import CallPolicy, Policy

Requesters = Callable[[str], Awaitable[Sequence[str] | None]]
Members = Callable[[Iterable[str]], Awaitable[Mapping[str, Collection[str]]]]


class CallPolicies:
    def __init__(self, policy: Policy, *, requesters: Requesters, members: Members) -> None:
        self.policy = policy
        self._requesters = requesters
        self._members = members

    async def decide(
        self,
        tool_name: str,
        arguments: str | Mapping[str, Any],
        *,
        channel_id: str | None,
        run_id: str | None,
    ) -> CallPolicy:
        requesters: Sequence[str] | None = None
        members: Mapping[str, Collection[str]] = {}
        if self.policy.asks_who_asked(tool_name):
            requesters = await self._requesters(run_id) if run_id else None
            groups = self.policy.groups_asked_about(tool_name)
            if groups:
                members = await self._members(groups)
        return self.policy.for_call(
            tool_name,
            arguments,
            channel_id=channel_id,
            requesters=requesters,
            group_members=members,
        )

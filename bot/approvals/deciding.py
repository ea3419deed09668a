"""Deciding a call with what its rules ask about looked up: who asked, and who is in a group.

The policy itself is pure; this is the one place that reads the run's requesters (from the
database, as four-eyes defines them) and user-group members (from Slack, cached) for it, and
only when a rule for the tool asks about requesters.
"""

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from bot.approvals.policy import CallPolicy, Policy
from bot.slack import workspace_scope

Requesters = Callable[[str], Awaitable[Sequence[str] | None]]
Members = Callable[[Iterable[str]], Awaitable[Mapping[str, Collection[str]]]]


class CallPolicies:
    """`by_team`: the policies of workspaces with a `[workspaces.T…]` table of their own; the
    policy in force is that of the workspace the work at hand is for, else `policy`."""

    def __init__(
        self,
        policy: Policy,
        *,
        requesters: Requesters,
        members: Members,
        by_team: Mapping[str, Policy] | None = None,
    ) -> None:
        self.default = policy
        self.by_team = dict(by_team or {})
        self._requesters = requesters
        self._members = members

    @property
    def policy(self) -> Policy:
        return self.for_team(workspace_scope.current_team())

    def for_team(self, team_id: str | None) -> Policy:
        return self.by_team.get(team_id or "", self.default)

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

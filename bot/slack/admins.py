"""Who is an admin: `[admin] users`, people or user groups. Admins read the audit log in Slack;
being an approver does not make anyone one, and nobody is one unless the config says so."""

from collections.abc import Mapping, Sequence

from bot.approvals.authorization import is_user_group
from bot.slack import workspace_scope
from bot.slack.user_groups import UserGroups


class Admins:
    """`by_team`: the admins of workspaces with an `[admin]` table of their own; those of the
    workspace the request came from decide."""

    def __init__(
        self,
        users: Sequence[str],
        groups: UserGroups,
        *,
        by_team: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.default = tuple(users)
        self.by_team = {team: tuple(ids) for team, ids in (by_team or {}).items()}
        self.groups = groups

    @property
    def users(self) -> tuple[str, ...]:
        return self.by_team.get(workspace_scope.current_team() or "", self.default)

    async def includes(self, user_id: str) -> bool:
        """A user group that cannot be read has no members here: it grants nothing."""
        users = self.users
        if user_id in users:
            return True
        members = await self.groups.members(u for u in users if is_user_group(u))
        return any(user_id in found for found in members.values())

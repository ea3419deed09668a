"""Who is an admin: `[admin] users`, people or user groups. Admins read the audit log in Slack;
being an approver does not make anyone one, and nobody is one unless the config says so."""

from collections.abc import Sequence

from bot.approvals.authorization import is_user_group
from bot.slack.user_groups import UserGroups


class Admins:
    def __init__(self, users: Sequence[str], groups: UserGroups) -> None:
        self.users = tuple(users)
        self.groups = groups

    async def includes(self, user_id: str) -> bool:
        """A user group that cannot be read has no members here: it grants nothing."""
        if user_id in self.users:
            return True
        members = await self.groups.members(u for u in self.users if is_user_group(u))
        return any(user_id in found for found in members.values())

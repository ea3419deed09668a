"""Who is in a Slack user group, cached briefly: a click must not wait on Slack every time.

A group id ("S…") names a group of one workspace: it is asked of, and cached for, the
workspace the work at hand is for."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import workspace_scope

log = logging.getLogger(__name__)


class UserGroups:
    """`clock` is any monotonic seconds counter; a membership read at t is trusted until t+ttl."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str | None, str], tuple[float, frozenset[str]]] = {}

    async def members(self, group_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """A group that cannot be read has no members: as an approver it grants nothing."""
        found = await self._read(group_ids)
        return {group: members or frozenset() for group, members in found.items()}

    async def readable(self, group_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """Only the groups that could be read: a rule that asks whether a requester is in a
        group that could not be read must fail closed, not read it as empty."""
        found = await self._read(group_ids)
        return {group: members for group, members in found.items() if members is not None}

    async def _read(self, group_ids: Iterable[str]) -> dict[str, frozenset[str] | None]:
        ids = [g for g in dict.fromkeys(group_ids) if g.startswith("S")]
        found = await asyncio.gather(*(self._members(g) for g in ids))
        return dict(zip(ids, found, strict=True))

    async def _members(self, group_id: str) -> frozenset[str] | None:
        now = self.clock()
        workspace = workspace_scope.current()
        key = (workspace.team_id if workspace else None, group_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            log.warning("cannot list user group %s: %s", group_id, exc.response.get("error"))
            return None
        users = frozenset(str(u) for u in response.get("users") or [])
        self._cache[key] = (now + self.ttl, users)
        return users

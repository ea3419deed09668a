"""Who is in a Slack user group, cached briefly: a click must not wait on Slack every time."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        ids = [g for g in dict.fromkeys(group_ids) if g.startswith("S")]
        found = await asyncio.gather(*(self._members(g) for g in ids))
        return dict(zip(ids, found, strict=True))

    async def _members(self, group_id: str) -> frozenset[str]:
        now = self.clock()
        cached = self._cache.get(group_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            # Fail closed: a group we cannot read grants nothing.
            log.warning("cannot list user group %s: %s", group_id, exc.response.get("error"))
            return frozenset()
        users = frozenset(str(u) for u in response.get("users") or [])
        self._cache[group_id] = (now + self.ttl, users)
        return users

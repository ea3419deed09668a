"""Links to messages, from Slack (`chat.getPermalink`), remembered: a message's permalink never
changes, and Home views, mirrored cards and `/threadgate pending` ask for the same few again
and again.

Slack's answer is used rather than a link built here: it knows the workspace's domain (and an
Enterprise Grid's), and adds the thread to a reply's link.
"""

import logging
from collections import OrderedDict

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import workspace_scope

log = logging.getLogger(__name__)

_NOT_IN_A_LINK = set("<>| \n")


class Permalinks:
    def __init__(self, client: AsyncWebClient, *, size: int = 1000) -> None:
        self.client = client
        self.size = size
        self._known: OrderedDict[tuple[str | None, str, str], str] = OrderedDict()

    async def of(self, channel: str, ts: str) -> str | None:
        """The message's link, or None when Slack has none for it (the message or channel is
        gone, Slack is down): whatever shows links then names the channel without one. A link
        is returned only if it can sit inside `<…|…>` as it is."""
        workspace = workspace_scope.current()
        key = (workspace.team_id if workspace else None, channel, ts)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        try:
            response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.warning("no permalink for a message: %s", exc.response.get("error"))
            return None
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("no permalink for a message: %s", type(exc).__name__)
            return None
        link = response.get("permalink")
        if not isinstance(link, str) or not link.startswith("https://"):
            return None
        if _NOT_IN_A_LINK.intersection(link):
            return None
        self._known[key] = link
        if len(self._known) > self.size:
            self._known.popitem(last=False)
        return link

"""Links to threads, from Slack (`chat.getPermalink`), remembered: a message's permalink never
changes, and a Home view or a mirrored card asks for the same few threads again and again.

Slack's answer is used rather than a link built by hand: it knows the workspace's domain (and
an Enterprise Grid's), and the link it gives opens the thread, not just the channel.
"""

import logging
from collections import OrderedDict

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class Permalinks:
    def __init__(self, client: AsyncWebClient, *, size: int = 1000) -> None:
        self.client = client
        self.size = size
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def of(self, channel: str, ts: str) -> str | None:
        """The message's link, or None when Slack will not give one (the copy then names the
        channel without a link)."""
        key = (channel, ts)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        try:
            response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.warning("no permalink for a thread: %s", exc.response.get("error"))
            return None
        link = response.get("permalink")
        if not isinstance(link, str) or not link.startswith("https://"):
            return None
        self._known[key] = link
        if len(self._known) > self.size:
            self._known.popitem(last=False)
        return link

"""Links to messages, as Slack makes them: `chat.getPermalink` knows the workspace's domain
and adds the thread to a reply's link, which an address built here would have to guess."""

import logging

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_NOT_IN_A_LINK = set("<>| \n")


async def permalink(client: AsyncWebClient, *, channel: str, message_ts: str) -> str | None:
    """None when Slack has no link for it (the message or channel is gone, Slack is down):
    a list of links still shows the rest. A link is returned only if it can sit inside
    `<…|…>` as it is."""
    try:
        response = await client.chat_getPermalink(channel=channel, message_ts=message_ts)
    except SlackApiError as exc:
        log.warning("no permalink for a message: %s", exc.response.get("error"))
        return None
    except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("no permalink for a message: %s", type(exc).__name__)
        return None
    link = response.get("permalink")
    if not isinstance(link, str) or not link.startswith("https://"):
        return None
    return None if _NOT_IN_A_LINK.intersection(link) else link

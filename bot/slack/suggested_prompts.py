"""The admin's suggested prompts, set where someone starts talking to the agent.

Two surfaces, one call (`assistant.threads.setSuggestedPrompts`):
- the agent messaging experience (`features.agent_view`): the person opened the app's
  Messages tab. There is no thread yet; the prompts go to the conversation, without a
  `thread_ts`, which Slack says would make the call fail silently there;
- the older assistant experience (`features.assistant_view`): the person started an
  assistant thread, and the prompts go to that thread.
A failure is logged and dropped: prompts are a courtesy, and the person can always just type.
"""

import logging
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SuggestedPrompt

log = logging.getLogger(__name__)


class SuggestedPrompts:
    def __init__(
        self, client: AsyncWebClient, prompts: Sequence[SuggestedPrompt], title: str | None
    ) -> None:
        self.client = client
        self.prompts = [{"title": p.title, "message": p.message} for p in prompts]
        self.title = title

    async def offer(self, *, channel_id: str, thread_ts: str | None) -> None:
        """Set the prompts in the conversation (or the assistant thread); none configured: no
        call, since Slack refuses an empty list."""
        if not self.prompts:
            return
        try:
            await self.client.assistant_threads_setSuggestedPrompts(
                channel_id=channel_id, thread_ts=thread_ts, prompts=self.prompts, title=self.title
            )
        except SlackApiError as exc:
            log.warning("could not set suggested prompts: %s", exc.response.get("error"))

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
from collections.abc import Mapping, Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import AgentConfig, SuggestedPrompt

log = logging.getLogger(__name__)


class _Offered:
    def __init__(self, prompts: Sequence[SuggestedPrompt], title: str | None) -> None:
        self.prompts = [{"title": p.title, "message": p.message} for p in prompts]
        self.title = title


class SuggestedPrompts:
    def __init__(
        self,
        client: AsyncWebClient,
        prompts: Sequence[SuggestedPrompt],
        title: str | None,
        by_team: Mapping[str, AgentConfig] | None = None,
    ) -> None:
        """`by_team`: the `[agent]` of each workspace that has its own, prompts and title."""
        self.client = client
        self.default = _Offered(prompts, title)
        self.by_team = {
            team: _Offered(agent.suggested_prompts, agent.suggested_prompts_title)
            for team, agent in (by_team or {}).items()
        }

    async def offer(
        self, *, channel_id: str, thread_ts: str | None, team_id: str | None = None
    ) -> None:
        """Set the workspace's prompts in the conversation (or the assistant thread); none
        configured: no call, since Slack refuses an empty list."""
        offered = self.by_team.get(team_id or "", self.default)
        if not offered.prompts:
            return
        try:
            await self.client.assistant_threads_setSuggestedPrompts(
                channel_id=channel_id,
                thread_ts=thread_ts,
                prompts=offered.prompts,
                title=offered.title,
            )
        except SlackApiError as exc:
            log.warning("could not set suggested prompts: %s", exc.response.get("error"))

"""Tools that ship with threadgate; admins switch them on in `[tools] builtins`."""

import dataclasses
from typing import Any

from agents import FunctionTool, function_tool
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import escape

# Whether each built-in needs approval when the admin's policy does not say.
SENSITIVE = {"slack_post_message": True, "slack_lookup_user": False}


def slack_tools(client: AsyncWebClient) -> dict[str, FunctionTool]:
    """Built per app so each tool talks to that app's Slack client, never a global one."""

    @function_tool
    async def slack_post_message(channel: str, text: str) -> str:
        """Post a message to a Slack channel.

        Args:
            channel: The channel id (C…) or name to post in.
            text: The message text. Mentions and links are shown as plain text.
        """
        try:
            response = await client.chat_postMessage(channel=channel, text=escape(text, 40_000))
        except SlackApiError as exc:
            return f"Slack refused the message: {exc.response.get('error', 'unknown error')}"
        return f"Posted to {response.get('channel', channel)} at ts {response.get('ts')}"

    @function_tool
    async def slack_lookup_user(user_id: str) -> str:
        """Look up a Slack user's name, title and time zone.

        Args:
            user_id: The user's id, like U024BE7LH.
        """
        try:
            response = await client.users_info(user=user_id)
        except SlackApiError as exc:
            return f"Slack could not find that user: {exc.response.get('error', 'unknown error')}"
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = profile.get("real_name") or user.get("real_name") or user.get("name") or user_id
        parts = [f"name: {name}"]
        if profile.get("title"):
            parts.append(f"title: {profile['title']}")
        if user.get("tz"):
            parts.append(f"time zone: {user['tz']}")
        return ", ".join(parts)

    return {"slack_post_message": slack_post_message, "slack_lookup_user": slack_lookup_user}


def slack_tools_unavailable(reason: str) -> dict[str, FunctionTool]:
    """The built-ins by name and arguments (for the policy and the model) where there is no
    Slack: running one answers `reason`."""

    async def unavailable(_context: Any, _arguments: str) -> str:
        return reason

    return {
        name: dataclasses.replace(tool, on_invoke_tool=unavailable)
        for name, tool in slack_tools(AsyncWebClient()).items()
    }

"""manifest.yml is what an admin pastes into Slack: it must parse, and ask for every scope,
event and feature the bot uses, or a fresh install silently lacks them."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import MAX_SUGGESTED_PROMPTS, SuggestedPrompt
from bot.slack.install import BOT_SCOPES, REDIRECT_PATH

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

SCOPES = {
    "app_mentions:read",  # app_mention events
    "assistant:write",  # assistant.threads.setStatus and setSuggestedPrompts, the agent view
    "channels:history",  # channel messages, conversations.replies in channels
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "commands",
    "files:read",
    "reactions:write",
    "usergroups:read",
    "users:read",
}
EVENTS = {
    "app_mention",
    "app_home_opened",
    "assistant_thread_started",
    "assistant_thread_context_changed",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
}
# Slack's manifest schema: agent_description at most 300 characters.
AGENT_DESCRIPTION_LIMIT = 300


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_it_asks_for_every_scope_the_bot_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]

    assert set(scopes) >= SCOPES
    assert len(scopes) == len(set(scopes))


def test_an_oauth_install_asks_for_the_manifest_scopes(manifest: dict[str, Any]) -> None:
    """Unless SLACK_SCOPES says otherwise, "Add to Slack" asks for what the manifest lists."""
    assert list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


def test_the_oauth_redirect_url_is_the_one_threadgate_serves(manifest: dict[str, Any]) -> None:
    (url,) = manifest["oauth_config"]["redirect_urls"]

    assert url.endswith(REDIRECT_PATH)


def test_it_subscribes_to_every_event_the_bot_handles(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]["bot_events"]

    assert set(events) >= EVENTS


def test_the_agent_view_is_on_with_a_description_and_valid_prompts(
    manifest: dict[str, Any],
) -> None:
    features = manifest["features"]
    agent = features["agent_view"]

    assert 0 < len(agent["agent_description"]) <= AGENT_DESCRIPTION_LIMIT
    prompts = agent["suggested_prompts"]
    assert 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS
    for prompt in prompts:
        SuggestedPrompt.model_validate(prompt)  # the same rules as [agent] suggested_prompts
    assert features["app_home"]["messages_tab_enabled"] is True
    assert "assistant_view" not in features  # Slack takes one experience or the other


def test_every_request_goes_to_the_one_endpoint_and_buttons_are_on(
    manifest: dict[str, Any],
) -> None:
    settings = manifest["settings"]
    [command] = manifest["features"]["slash_commands"]
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        command["url"],
    ]

    assert all(url.endswith("/slack/events") for url in urls)
    assert settings["interactivity"]["is_enabled"] is True
    assert command["command"] == "/threadgate"

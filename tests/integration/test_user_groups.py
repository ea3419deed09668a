"""Approver groups are read from Slack and cached briefly: a change reaches clicks in time."""

from bot.slack.client import build_slack_client
from bot.slack.user_groups import UserGroups
from tests.fakes.slack_api import FakeSlackAPI

GROUP = "SAPPROVERS"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_membership_change_is_seen_once_the_cache_expires() -> None:
    """Someone removed from an approver group must lose the right to approve within the ttl."""
    clock = Clock()
    async with FakeSlackAPI() as slack:
        slack.usergroups[GROUP] = ["U0OLD"]
        client = build_slack_client(slack.bot_token, base_url=slack.base_url)
        groups = UserGroups(client, ttl=60.0, clock=clock)

        assert await groups.members([GROUP]) == {GROUP: frozenset({"U0OLD"})}
        slack.usergroups[GROUP] = ["U0NEW"]
        clock.now += 59.0
        assert await groups.members([GROUP]) == {GROUP: frozenset({"U0OLD"})}
        assert len(slack.calls_to("usergroups.users.list")) == 1

        clock.now += 1.0
        assert await groups.members([GROUP]) == {GROUP: frozenset({"U0NEW"})}
        assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_a_group_slack_cannot_list_grants_nobody() -> None:
    async with FakeSlackAPI() as slack:
        client = build_slack_client(slack.bot_token, base_url=slack.base_url)
        groups = UserGroups(client, clock=Clock())

        assert await groups.members([GROUP, "U0NOTAGROUP"]) == {GROUP: frozenset()}

"""Two app instances on one PostgreSQL database, both receiving the clicks of one approval."""

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call

from bot.slack.blocks import APPROVE_ACTION
from storage import decision_log
from tests.conftest import empty_database
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP,
    GROUP_MEMBER,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.running_app import RunningBot, running_bot

pytestmark = pytest.mark.postgres


async def test_clicks_spread_over_two_instances_run_the_tool_once(
    pg_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    await empty_database(pg_url)
    first_model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c1"}, call_id="call_1")],
            [assistant_message("done by one")],
        ]
    )
    second_model = ScriptedModel([[assistant_message("done by two")]])
    async with (
        running_bot(
            database_url=pg_url, slack=slack, config=approval_config(), model=first_model
        ) as one,
        running_bot(
            database_url=pg_url, slack=slack, config=approval_config(), model=second_model
        ) as two,
    ):
        await one.send(
            one.requests.mention(text="delete c1", user=ASKER, channel=CHANNEL, ts="5.1")
        )
        await one.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])

        requests = [
            bot.requests.block_actions(
                user=user,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="5.2",
                thread_ts="5.1",
            )
            for bot in (one, two)
            for user in (APPROVER, GROUP_MEMBER) * 5
        ]
        half = len(requests) // 2
        statuses = await asyncio.gather(
            *(one.send(r) for r in requests[:half]), *(two.send(r) for r in requests[half:])
        )
        await slack.wait_for(
            "chat.postMessage", where=lambda c: str(c.args.get("text", "")).startswith("done")
        )
        await asyncio.gather(one.settle(), two.settle())
        assert {status for status, _ in statuses} == {200}
        assert executions == Counter({"delete_customer:c1": 1})
        answers = [
            t for t in texts(slack.messages_in_thread(CHANNEL, "5.1")) if t.startswith("done")
        ]
        assert len(answers) == 1


async def test_a_quorum_reached_by_a_burst_of_votes_on_two_instances_runs_the_tool_once(
    pg_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    await empty_database(pg_url)
    voters = [f"UVOTER{i:02d}" for i in range(20)]
    slack.usergroups[GROUP] = voters
    config = approval_config(tools={"refund": {"approvals_needed": 2}})
    first_model = ScriptedModel(
        [
            [function_call("refund", {"order_id": "o7", "amount": 9000}, call_id="call_1")],
            [assistant_message("refunded by one")],
        ]
    )
    second_model = ScriptedModel([[assistant_message("refunded by two")]])
    async with (
        running_bot(database_url=pg_url, slack=slack, config=config, model=first_model) as one,
        running_bot(database_url=pg_url, slack=slack, config=config, model=second_model) as two,
    ):
        await one.send(
            one.requests.mention(text="refund o7", user=ASKER, channel=CHANNEL, ts="7.1")
        )
        await one.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])

        bots = (one, two)
        statuses = await asyncio.gather(
            *(
                bots[i % 2].send(
                    bots[i % 2].requests.block_actions(
                        user=user,
                        action_id=APPROVE_ACTION,
                        value=approval_id,
                        channel=CHANNEL,
                        message_ts="7.2",
                        thread_ts="7.1",
                    )
                )
                for i, user in enumerate(voters)
            )
        )
        await slack.wait_for(
            "chat.postMessage", where=lambda c: str(c.args.get("text", "")).startswith("refunded")
        )
        await asyncio.gather(one.settle(), two.settle())
        assert {status for status, _ in statuses} == {200}
        assert executions == Counter({"refund:o7": 1})
        answers = [
            t for t in texts(slack.messages_in_thread(CHANNEL, "7.1")) if t.startswith("refunded")
        ]
        assert len(answers) == 1
        assert len(await decision_log.approved_by(one.app.db, approval_id)) == 2


async def test_an_event_sent_to_both_instances_starts_one_run(
    pg_url: str, slack: FakeSlackAPI
) -> None:
    await empty_database(pg_url)
    models = [ScriptedModel([[assistant_message("one answer")]]) for _ in range(2)]
    async with (
        running_bot(database_url=pg_url, slack=slack, model=models[0]) as one,
        running_bot(database_url=pg_url, slack=slack, model=models[1]) as two,
    ):
        mention = one.requests.mention(text="hi", channel=CHANNEL, ts="6.1", event_id="Ev0BOTH")
        await asyncio.gather(one.send(mention), two.send(mention))
        await asyncio.gather(one.settle(), two.settle())
    assert texts(slack.calls_to("chat.postMessage")) == ["one answer"]
    assert sum(len(m.calls) for m in models) == 1


async def test_a_card_changed_in_two_instances_ends_on_its_newest_look(
    pg_url: str, slack: FakeSlackAPI
) -> None:
    """Each instance updates the card for its own vote. The first update is slow to reach
    Slack: the second instance holds its newer look back until the first has landed, so
    the older look never lands last."""
    await empty_database(pg_url)
    voters = [f"UVOTER{i:02d}" for i in range(3)]
    slack.usergroups[GROUP] = voters
    config = approval_config(tools={"refund": {"approvals_needed": 3}})
    model = ScriptedModel(
        [[function_call("refund", {"order_id": "o8", "amount": 9000}, call_id="call_1")]]
    )
    async with (
        running_bot(database_url=pg_url, slack=slack, config=config, model=model) as one,
        running_bot(database_url=pg_url, slack=slack, config=config) as two,
    ):
        await one.send(
            one.requests.mention(text="refund o8", user=ASKER, channel=CHANNEL, ts="8.1")
        )
        await one.settle()
        [card] = approval_messages(slack)
        [approval_id] = approval_ids(card)

        def vote(bot: RunningBot, user: str) -> Any:
            return bot.send(
                bot.requests.block_actions(
                    user=user,
                    action_id=APPROVE_ACTION,
                    value=approval_id,
                    channel=CHANNEL,
                    message_ts=str(card.args.get("ts") or "8.2"),
                    thread_ts="8.1",
                )
            )

        slack.slow("chat.update", 1.0)  # the first instance's update, "1 of 3"
        await vote(one, voters[0])
        await asyncio.sleep(0.2)
        await vote(two, voters[1])
        await asyncio.gather(one.settle(), two.settle())
    updates = [c for c in slack.calls_to("chat.update") if approval_id in json.dumps(c.args)]
    assert len(updates) == 2
    newest = json.dumps(updates[-1].args["blocks"])
    assert f"<@{voters[0]}>" in newest
    assert f"<@{voters[1]}>" in newest

"""Rules deciding calls end to end: signed requests over HTTP, the fake Web API, a scripted
model, on SQLite and PostgreSQL."""

import json
from collections import Counter
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.config import Config
from storage.approvals import get_approval
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP,
    GROUP_MEMBER,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import click
from tests.running_app import RunningBot, running_bot

THREAD_TS = "1700000001.000100"
FINANCE = "UFINANCE01"
PAYMENTS = "C0PAYMENTS"


def calling(tool: str, arguments: dict[str, Any]) -> ScriptedModel:
    return ScriptedModel(
        [[function_call(tool, arguments, call_id="call_1")], [assistant_message("Done.")]]
    )


async def ask(bot: RunningBot, *, user: str = ASKER, channel: str = CHANNEL) -> None:
    request = bot.requests.mention(text="please", user=user, channel=channel, ts=THREAD_TS)
    status, _ = await bot.send(request)
    assert status == 200
    await bot.settle()


def refund_rules(**tools: Any) -> Config:
    return approval_config(
        tools=tools or {"refund": {"require": "always"}},
        rules=[
            {"tools": ["refund"], "when": {"amount": {"gt": 1000}}, "approvers": [FINANCE]},
            {"tools": ["refund"], "when": {"amount": {"lte": 50}}, "require": "never"},
        ],
    )


async def test_a_small_refund_runs_at_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("refund", {"order_id": "o1", "amount": 20})
    async with running_bot(
        database_url=database_url, slack=slack, config=refund_rules(), model=model
    ) as bot:
        await ask(bot)
        assert not approval_messages(slack)
        assert executions == Counter({"refund:o1": 1})


async def test_a_large_refund_waits_for_the_rules_approvers_and_the_card_names_the_rule(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("refund", {"order_id": "o1", "amount": 5000})
    async with running_bot(
        database_url=database_url, slack=slack, config=refund_rules(), model=model
    ) as bot:
        await ask(bot)
        [card] = approval_messages(slack)
        rendered = json.dumps(card.args["blocks"], ensure_ascii=False)
        assert f"rule 1: amount &gt; 1000 → 1 approval from <@{FINANCE}>" in rendered
        [approval_id] = approval_ids(card)
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert (approval.rule_index, approval.approvers) == (1, [FINANCE])
        assert approval.rule_label == "rule 1: amount > 1000 → 1 approval"

        await click(bot, approval_id, user=APPROVER)  # a global approver: not for this rule
        assert not executions
        await click(bot, approval_id, user=FINANCE)
        assert executions == Counter({"refund:o1": 1})


async def test_a_medium_refund_falls_to_the_tool_table(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("refund", {"order_id": "o1", "amount": 200})
    async with running_bot(
        database_url=database_url, slack=slack, config=refund_rules(), model=model
    ) as bot:
        await ask(bot)
        [card] = approval_messages(slack)
        assert "[approvals.tools.refund] → 1 approval" in json.dumps(
            card.args["blocks"], ensure_ascii=False
        )
        [approval_id] = approval_ids(card)
        await click(bot, approval_id, user=APPROVER)
        assert executions == Counter({"refund:o1": 1})


def trusted_askers(*requesters: str) -> Config:
    return approval_config(
        rules=[{"tools": ["delete_customer"], "requesters": list(requesters), "require": "never"}]
    )


async def test_a_requester_rule_lets_a_listed_person_run_the_call(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("delete_customer", {"customer_id": "c42"})
    async with running_bot(
        database_url=database_url, slack=slack, config=trusted_askers(ASKER), model=model
    ) as bot:
        await ask(bot, user=ASKER)
        assert not approval_messages(slack)
        assert executions == Counter({"delete_customer:c42": 1})


async def test_a_requester_rule_admits_a_member_of_a_listed_group(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("delete_customer", {"customer_id": "c42"})
    async with running_bot(
        database_url=database_url, slack=slack, config=trusted_askers(GROUP), model=model
    ) as bot:
        await ask(bot, user=GROUP_MEMBER)
        assert not approval_messages(slack)
        assert executions == Counter({"delete_customer:c42": 1})


async def test_a_requester_rule_leaves_anyone_else_to_the_tool_table(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("delete_customer", {"customer_id": "c42"})
    async with running_bot(
        database_url=database_url, slack=slack, config=trusted_askers(ASKER, GROUP), model=model
    ) as bot:
        await ask(bot, user=OUTSIDER)
        assert len(approval_messages(slack)) == 1
        assert not executions


def payments_channel_only() -> Config:
    return approval_config(
        rules=[{"tools": ["refund"], "channels": [PAYMENTS], "require": "never"}]
    )


async def test_a_channel_rule_runs_calls_in_its_channel(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("refund", {"order_id": "o1", "amount": 5000})
    async with running_bot(
        database_url=database_url, slack=slack, config=payments_channel_only(), model=model
    ) as bot:
        await ask(bot, channel=PAYMENTS)
        assert not approval_messages(slack)
        assert executions == Counter({"refund:o1": 1})


async def test_a_channel_rule_says_nothing_about_other_channels(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = calling("refund", {"order_id": "o1", "amount": 5000})
    async with running_bot(
        database_url=database_url, slack=slack, config=payments_channel_only(), model=model
    ) as bot:
        await ask(bot, channel=CHANNEL)
        assert len(approval_messages(slack)) == 1
        assert not executions


async def test_a_condition_on_a_missing_argument_fails_closed(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(
        tools={"refund": {"require": "never"}},
        rules=[{"tools": ["refund"], "when": {"currency": {"eq": "EUR"}}, "require": "never"}],
    )
    model = calling("refund", {"order_id": "o1", "amount": 20})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot)
        [card] = approval_messages(slack)
        assert not executions
        rendered = json.dumps(card.args["blocks"], ensure_ascii=False)
        assert "failed closed (rule 1: the call has no `currency`) → 1 approval" in rendered
        [approval_id] = approval_ids(card)
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.rule_index is None
        await click(bot, approval_id, user=APPROVER)
        assert executions == Counter({"refund:o1": 1})


async def test_threadgate_shows_the_rules_in_force_in_order_privately(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=refund_rules(), model=ScriptedModel([])
    ) as bot:
        status, body = await bot.send(
            bot.requests.slash_command(command="/threadgate", text="policy", user=OUTSIDER)
        )
        assert status == 200
        answer = json.loads(body)
        assert answer["response_type"] == "ephemeral"
        text = answer["text"]
        first = text.index(f"1. `refund` when amount &gt; 1000 → from <@{FINANCE}>")
        second = text.index("2. `refund` when amount ≤ 50 → runs without approval")
        assert first < second

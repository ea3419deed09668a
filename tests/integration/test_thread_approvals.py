"""Approve for this thread end to end: signed clicks over HTTP, the fake Web API, a scripted
model, on SQLite and PostgreSQL. A thread approval covers later calls of the same tool that the
same rule governs in the same thread, and nothing else; Revoke and its time end it."""

import json
from collections import Counter
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import select, update
from sqlmodel import col

from bot.config import Config
from bot.slack.blocks import APPROVE_THREAD_ACTION, REVOKE_THREAD_ACTION
from storage import decision_log
from storage.approvals import get_approval
from storage.models import Approval, DecisionKind, ThreadApproval, utcnow
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import THREAD_TS, click, private_notes
from tests.running_app import RunningBot, running_bot

OTHER_THREAD_TS = "1700000009.000100"


def small_refunds_for_the_thread() -> Config:
    """Rule 1 (small refunds) offers the thread approval; large ones fall to the table,
    which does not."""
    return approval_config(
        tools={"refund": {"require": "always"}, "delete_customer": {"require": "always"}},
        rules=[
            {
                "tools": ["refund"],
                "when": {"amount": {"lte": 100}},
                "allow_for_thread": True,
                "thread_approval_ttl": "2h",
            }
        ],
    )


def two_calls(second_tool: str, second: dict[str, Any]) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("refund", {"order_id": "o1", "amount": 20}, call_id="call_1")],
            [assistant_message("Refunded o1.")],
            [function_call(second_tool, second, call_id="call_2")],
            [assistant_message("Second done.")],
            [function_call("refund", {"order_id": "o3", "amount": 40}, call_id="call_3")],
            [assistant_message("Third done.")],
        ]
    )


async def say(
    bot: RunningBot, ts: str, *, thread_ts: str | None = THREAD_TS, user: str = ASKER
) -> None:
    request = bot.requests.mention(
        text="please", user=user, channel=CHANNEL, ts=ts, thread_ts=thread_ts
    )
    status, _ = await bot.send(request)
    assert status == 200
    await bot.settle()


def buttons(call: RecordedCall) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in call.args.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    }


def auto_posts(slack: FakeSlackAPI) -> list[RecordedCall]:
    return [c for c in slack.calls_to("chat.postMessage") if "auto-approved" in c.args["text"]]


async def approve_the_first_for_the_thread(bot: RunningBot, slack: FakeSlackAPI) -> str:
    """Ask for a small refund, approve it for the thread; returns the thread approval's id."""
    await say(bot, THREAD_TS, thread_ts=None)
    [card] = approval_messages(slack)
    [approval_id] = approval_ids(card)
    assert await click(bot, approval_id, action=APPROVE_THREAD_ACTION) == 200
    async with bot.app.db.read() as session:
        [thread_approval] = (await session.scalars(select(ThreadApproval))).all()
    return thread_approval.id


async def test_the_button_runs_this_call_and_covers_the_next_of_the_same_rule(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        await say(bot, THREAD_TS, thread_ts=None)
        [card] = approval_messages(slack)
        [approval_id] = approval_ids(card)
        offered = buttons(card)[APPROVE_THREAD_ACTION]
        assert offered["text"]["text"] == "Approve for this thread"
        assert offered["value"] == approval_id
        assert "for 2 hours" in json.dumps(card.args["blocks"])

        await click(bot, approval_id, action=APPROVE_THREAD_ACTION)
        assert executions == Counter({"refund:o1": 1})
        [given] = await decision_log.entries(bot.app.db, approval_id)
        assert (given.kind, given.user_id) == (DecisionKind.THREAD_APPROVAL, APPROVER)
        async with bot.app.db.read() as session:
            [thread_approval] = (await session.scalars(select(ThreadApproval))).all()
        assert (thread_approval.rule_index, thread_approval.tool_name) == (1, "refund")
        assert (thread_approval.approved_by, thread_approval.requesters) == (APPROVER, [ASKER])
        assert thread_approval.thread_ts == THREAD_TS
        lasts = thread_approval.expires_at - thread_approval.created_at
        assert lasts.total_seconds() == 2 * 3600

        await say(bot, "1700000001.000300")
        assert executions == Counter({"refund:o1": 1, "refund:o2": 1})
        assert len(approval_messages(slack)) == 1  # no second card
        [post] = auto_posts(slack)
        assert post.args["thread_ts"] == THREAD_TS
        assert f"auto-approved under <@{APPROVER}>'s thread approval" in post.args["text"]
        assert '\\"order_id\\": \\"o2\\"' in json.dumps(post.args["blocks"])
        assert buttons(post)[REVOKE_THREAD_ACTION]["value"] == thread_approval.id

        async with bot.app.db.read() as session:
            auto = await session.scalar(select(Approval).where(col(Approval.call_id) == "call_2"))
        assert auto is not None
        assert auto.thread_approval_id == thread_approval.id
        assert auto.executed_at is not None  # claimed in the execution ledger
        [entry] = await decision_log.entries(bot.app.db, auto.id)
        assert (entry.kind, entry.user_id) == (DecisionKind.AUTO_APPROVAL, APPROVER)
        assert auto.rule_index == 1


async def test_a_call_another_rule_governs_still_gets_a_card_without_the_button(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 5000})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        await say(bot, "1700000001.000300")
        assert "refund:o2" not in executions
        assert not auto_posts(slack)
        [_, large] = approval_messages(slack)
        assert APPROVE_THREAD_ACTION not in buttons(large)  # the table does not offer it


async def test_another_thread_gets_a_card(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        await say(bot, OTHER_THREAD_TS, thread_ts=None)
        assert "refund:o2" not in executions
        assert not auto_posts(slack)
        [_, other] = approval_messages(slack)
        assert other.args["thread_ts"] == OTHER_THREAD_TS


async def test_another_tool_gets_a_card(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """Both tools' tables offer it (no rule decides either): still one tool's approval."""
    config = approval_config(
        tools={
            "refund": {"require": "always", "allow_for_thread": True},
            "delete_customer": {"require": "always", "allow_for_thread": True},
        }
    )
    model = two_calls("delete_customer", {"customer_id": "c42"})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        assert executions == Counter({"refund:o1": 1})
        await say(bot, "1700000001.000300")
        assert "delete_customer:c42" not in executions
        assert not auto_posts(slack)
        [_, other] = approval_messages(slack)
        assert APPROVE_THREAD_ACTION in buttons(other)


async def test_revoke_by_the_requester_brings_the_card_back_and_says_so(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        thread_approval_id = await approve_the_first_for_the_thread(bot, slack)
        await say(bot, "1700000001.000300")
        assert executions["refund:o2"] == 1
        assert len(auto_posts(slack)) == 1

        await click(bot, thread_approval_id, user=ASKER, action=REVOKE_THREAD_ACTION)
        async with bot.app.db.read() as session:
            revoked = await session.get(ThreadApproval, thread_approval_id)
        assert revoked is not None
        assert revoked.revoked_by == ASKER
        assert revoked.revoked_at is not None
        updates = [json.dumps(c.args["blocks"]) for c in slack.calls_to("chat.update")]
        said = [u for u in updates if f"revoked by <@{ASKER}>" in u]
        assert len(said) == 2  # the card that gave it and the auto-approved post
        assert all(REVOKE_THREAD_ACTION not in u for u in said)
        async with bot.app.db.read() as session:
            auto = await session.scalar(select(Approval).where(col(Approval.call_id) == "call_2"))
        assert auto is not None
        assert auto.message_ts is not None
        assert auto.message_ts in {c.args["ts"] for c in slack.calls_to("chat.update")}
        entries = await decision_log.entries(bot.app.db, revoked.approval_id)
        assert [(e.kind, e.user_id) for e in entries] == [
            (DecisionKind.THREAD_APPROVAL, APPROVER),
            (DecisionKind.REVOKE, ASKER),
        ]

        await say(bot, "1700000001.000500")
        assert "refund:o3" not in executions
        assert len(approval_messages(slack)) == 2
        assert len(auto_posts(slack)) == 1

        await click(bot, thread_approval_id, user=APPROVER, action=REVOKE_THREAD_ACTION)
        assert any("already revoked" in n for n in private_notes(slack, APPROVER))


async def test_revoke_by_an_outsider_is_refused_privately(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        thread_approval_id = await approve_the_first_for_the_thread(bot, slack)
        await click(bot, thread_approval_id, user=OUTSIDER, action=REVOKE_THREAD_ACTION)
        assert any("may revoke" in n for n in private_notes(slack, OUTSIDER))
        async with bot.app.db.read() as session:
            kept = await session.get(ThreadApproval, thread_approval_id)
        assert kept is not None
        assert kept.revoked_at is None
        await say(bot, "1700000001.000300")
        assert executions["refund:o2"] == 1


async def test_an_expired_thread_approval_brings_the_card_back(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        async with bot.app.db.write() as session:
            await session.execute(update(ThreadApproval).values(expires_at=utcnow()))
        await say(bot, "1700000001.000300")
        assert "refund:o2" not in executions
        assert not auto_posts(slack)
        assert len(approval_messages(slack)) == 2


async def test_an_approval_that_does_not_offer_it_refuses_the_click(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    config = approval_config(tools={"refund": {"require": "always"}})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await say(bot, THREAD_TS, thread_ts=None)
        [card] = approval_messages(slack)
        assert APPROVE_THREAD_ACTION not in buttons(card)
        [approval_id] = approval_ids(card)
        await click(bot, approval_id, action=APPROVE_THREAD_ACTION)  # a forged click
        assert not executions
        assert any(
            "cannot be approved for the whole thread" in n for n in private_notes(slack, APPROVER)
        )
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == "pending"


async def test_a_call_whose_policy_failed_closed_is_never_covered(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """A table's thread approval (no rule) must not cover a call nobody could read, which
    the table also answers for."""
    config = approval_config(
        tools={"refund": {"require": "always", "allow_for_thread": True}},
        rules=[{"tools": ["refund"], "when": {"currency": {"eq": "EUR"}}, "require": "never"}],
    )
    model = ScriptedModel(
        [
            [
                function_call(
                    "refund", {"order_id": "o1", "amount": 20, "currency": "USD"}, call_id="call_1"
                )
            ],
            [assistant_message("Refunded o1.")],
            [function_call("refund", {"order_id": "o2", "amount": 30}, call_id="call_2")],
            [assistant_message("Second done.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        assert executions == Counter({"refund:o1": 1})
        await say(bot, "1700000001.000300")
        assert "refund:o2" not in executions
        assert not auto_posts(slack)
        [_, closed] = approval_messages(slack)
        assert "failed closed" in json.dumps(closed.args["blocks"], ensure_ascii=False)
        assert APPROVE_THREAD_ACTION not in buttons(closed)


async def test_a_call_its_giver_asked_for_gets_a_card(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """With self-approval off, the approver who gave it asking in the thread makes them a
    requester of the next call: their own thread approval does not approve it."""
    model = two_calls("refund", {"order_id": "o2", "amount": 30})
    async with running_bot(
        database_url=database_url, slack=slack, config=small_refunds_for_the_thread(), model=model
    ) as bot:
        await approve_the_first_for_the_thread(bot, slack)
        await say(bot, "1700000001.000300", user=APPROVER)
        assert "refund:o2" not in executions
        assert not auto_posts(slack)
        assert len(approval_messages(slack)) == 2

"""Two-person (quorum) approval end to end: signed clicks over HTTP, the fake Web API, a
scripted model, on both databases."""

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import event, text

from bot.config import Config
from bot.slack.blocks import APPROVE_ACTION, REJECT_ACTION
from storage import decision_log
from storage.approvals import get_approval
from storage.models import ApprovalStatus, DecisionKind
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
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
from tests.integration.test_approvals import (
    THREAD_TS,
    _expire_now,
    ask,
    click,
    private_notes,
    reject_with,
    tool_outputs,
)
from tests.running_app import bot_settings, running_bot

ANSWER = "Refunded o1."
VOTERS = [f"UVOTER{i:02d}" for i in range(20)]


def refund_then_answer(answer: str = ANSWER) -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("refund", {"order_id": "o1", "amount": 5000}, call_id="call_1")],
            [assistant_message(answer)],
        ]
    )


def two_person(**approvals: Any) -> Config:
    return approval_config(tools={"refund": {"approvals_needed": 2}}, **approvals)


def card_text(call: RecordedCall) -> str:
    return json.dumps(call.args["blocks"])


def has_buttons(call: RecordedCall) -> bool:
    return any(b["type"] == "actions" for b in call.args["blocks"])


async def test_two_approvers_are_needed_and_the_same_one_twice_counts_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = refund_then_answer()
    async with running_bot(
        database_url=database_url, slack=slack, config=two_person(), model=model
    ) as bot:
        await ask(bot, "refund order o1")
        [request] = approval_messages(slack)
        assert "2 approvals needed" in card_text(request)
        [approval_id] = approval_ids(request)

        await click(bot, approval_id, user=APPROVER)
        assert not executions
        [counted] = slack.calls_to("chat.update")
        assert f"1 of 2 approvals: <@{APPROVER}>" in card_text(counted)
        assert has_buttons(counted)
        assert model.remaining_steps == 1

        await click(bot, approval_id, user=APPROVER)
        assert private_notes(slack, APPROVER) == [
            "You already approved this; it needs another approver."
        ]
        assert len(slack.calls_to("chat.update")) == 1  # nothing changed, nothing redrawn
        assert await decision_log.approved_by(bot.app.db, approval_id) == [APPROVER]
        assert not executions

        await click(bot, approval_id, user=GROUP_MEMBER)
        assert executions == Counter({"refund:o1": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS)).count(ANSWER) == 1
        decided = slack.calls_to("chat.update")[1]
        assert f"Approved by <@{APPROVER}> and <@{GROUP_MEMBER}>" in card_text(decided)
        assert not has_buttons(decided)
        model.assert_complete()
        entries = await decision_log.entries(bot.app.db, approval_id)
        assert [(e.user_id, e.kind) for e in entries] == [
            (APPROVER, DecisionKind.APPROVE),
            (GROUP_MEMBER, DecisionKind.APPROVE),
        ]

        await click(bot, approval_id, user="UADMIN0001")  # too late: told, nothing runs
        assert "already decided" in private_notes(slack, "UADMIN0001")[0]
        assert f"<@{APPROVER}> and <@{GROUP_MEMBER}>" in private_notes(slack, "UADMIN0001")[0]
        assert executions == Counter({"refund:o1": 1})


async def test_a_rejection_after_one_approval_rejects_at_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = refund_then_answer("No refund, then.")
    async with running_bot(
        database_url=database_url, slack=slack, config=two_person(), model=model
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=APPROVER)
        await click(bot, approval_id, user=GROUP_MEMBER, action=REJECT_ACTION)
        await reject_with(bot, approval_id, "Over the limit <!channel>", user=GROUP_MEMBER)

        assert not executions
        assert tool_outputs(model) == ["Over the limit <!channel>"]
        rejected = slack.calls_to("chat.update")[-1]
        assert f"Rejected by <@{GROUP_MEMBER}>" in card_text(rejected)
        assert f"with 1 of 2 approvals (<@{APPROVER}>)" in card_text(rejected)
        assert "&lt;!channel&gt;" in card_text(rejected)
        assert not has_buttons(rejected)
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "No refund, then."
        entries = await decision_log.entries(bot.app.db, approval_id)
        assert [(e.user_id, e.kind, e.reason) for e in entries] == [
            (APPROVER, DecisionKind.APPROVE, None),
            (GROUP_MEMBER, DecisionKind.REJECT, "Over the limit <!channel>"),
        ]


@pytest.mark.parametrize("self_approval", [False, True])
async def test_a_requesters_approval_never_counts(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str], self_approval: bool
) -> None:
    config = two_person(approvers=[APPROVER, GROUP, ASKER], allow_self_approval=self_approval)
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=refund_then_answer()
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])

        await click(bot, approval_id, user=ASKER)
        [note] = private_notes(slack, ASKER)
        assert "asked for this call" in note
        assert await decision_log.approved_by(bot.app.db, approval_id) == []
        assert not slack.calls_to("chat.update")

        await click(bot, approval_id, user=APPROVER)
        assert not executions
        assert "1 of 2 approvals" in card_text(slack.calls_to("chat.update")[-1])
        await click(bot, approval_id, user=ASKER)
        assert not executions
        await click(bot, approval_id, user=GROUP_MEMBER)
        assert executions == Counter({"refund:o1": 1})


async def test_expiry_rejects_a_partly_approved_call(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = refund_then_answer("Nobody else approved, so no refund.")
    async with running_bot(
        database_url=database_url, slack=slack, config=two_person(), model=model
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=APPROVER)
        await _expire_now(bot.app.db)
        await bot.app.sweeper.sweep()
        await bot.settle()

        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.EXPIRED
        assert not executions
        [output] = tool_outputs(model)
        assert "expired" in output
        expired = slack.calls_to("chat.update")[-1]
        assert "Expired" in card_text(expired)
        assert f"with 1 of 2 approvals (<@{APPROVER}>)" in card_text(expired)
        entries = await decision_log.entries(bot.app.db, approval_id)
        assert [(e.user_id, e.kind) for e in entries] == [
            (APPROVER, DecisionKind.APPROVE),
            (None, DecisionKind.EXPIRE),
        ]
        await click(bot, approval_id, user=GROUP_MEMBER)
        assert "already decided" in private_notes(slack, GROUP_MEMBER)[0]
        assert not executions


async def test_twenty_concurrent_approvals_from_distinct_approvers_run_the_tool_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    slack.usergroups[GROUP] = VOTERS
    model = refund_then_answer()
    async with running_bot(
        database_url=database_url, slack=slack, config=two_person(), model=model
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        statuses = await asyncio.gather(
            *(
                bot.send(
                    bot.requests.block_actions(
                        user=user,
                        action_id=APPROVE_ACTION,
                        value=approval_id,
                        channel=CHANNEL,
                        message_ts="1700000002.000100",
                        thread_ts=THREAD_TS,
                    )
                )
                for user in VOTERS
            )
        )
        await bot.settle()
        assert [s for s, _ in statuses] == [200] * 20
        assert executions == Counter({"refund:o1": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS)).count(ANSWER) == 1
        assert len(await decision_log.approved_by(bot.app.db, approval_id)) == 2
        told = [c for c in slack.calls_to("chat.postEphemeral") if c.args["user"] in VOTERS]
        assert len(told) == 18
        assert all("already decided" in str(c.args["text"]) for c in told)
        assert "Approved by" in card_text(slack.calls_to("chat.update")[-1])


async def test_a_rejection_reason_in_the_decision_log_is_encrypted_at_rest(
    database_url: str, slack: FakeSlackAPI
) -> None:
    settings = bot_settings(
        database_url, slack, encryption_key=SecretStr(Fernet.generate_key().decode())
    )
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=two_person(),
        model=refund_then_answer("No refund."),
        settings=settings,
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await reject_with(bot, approval_id, "the swordfish account is frozen")

        async with bot.app.db.engine.connect() as conn:
            stored = await conn.scalar(text("SELECT reason FROM approval_decisions"))
        assert stored is not None
        assert stored.startswith("tgenc:v1:")
        assert "swordfish" not in stored
        [entry] = await decision_log.entries(bot.app.db, approval_id)
        assert entry.reason == "the swordfish account is frozen"


async def test_a_vote_redraws_its_card_from_its_own_transaction(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """The card a vote owes is claimed and drawn from what the vote's transaction read: its
    update reads no approval again, and still shows the vote."""
    async with running_bot(
        database_url=database_url, slack=slack, config=two_person(), model=refund_then_answer()
    ) as bot:
        await ask(bot, "refund order o1")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2])

        engine = bot.app.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            await click(bot, approval_id, user=APPROVER)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        [counted] = slack.calls_to("chat.update")
        assert f"1 of 2 approvals: <@{APPROVER}>" in card_text(counted)
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        # The click's lookup, then the vote's locks and count: nothing for the card.
        assert sum("FROM approval_decisions" in s for s in reads) == 1
        assert sum(s.count("FROM approvals") for s in reads) == 2, reads

"""Approve / Reject end to end: signed clicks over HTTP, the fake Web API, a scripted model."""

import asyncio
import json
from collections import Counter

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import update
from sqlmodel import col

from bot.slack.blocks import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION, REJECT_VIEW
from storage.approvals import get_approval
from storage.database import Database
from storage.models import Approval, ApprovalStatus, Run, RunStatus, utcnow
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP_MEMBER,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
    texts,
)
from tests.running_app import RunningBot, running_bot

THREAD_TS = "1700000001.000100"


def delete_then_answer(answer: str = "Customer c42 is gone.") -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message(answer)],
        ]
    )


async def ask(
    bot: RunningBot, text: str = "please delete customer c42", ts: str = THREAD_TS
) -> None:
    status, _ = await bot.send(bot.requests.mention(text=text, user=ASKER, channel=CHANNEL, ts=ts))
    assert status == 200
    await bot.settle()


async def click(
    bot: RunningBot,
    approval_id: str,
    *,
    user: str = APPROVER,
    action: str = APPROVE_ACTION,
    channel: str = CHANNEL,
    team_id: str | None = None,
) -> int:
    status, _ = await bot.send(
        bot.requests.block_actions(
            user=user,
            action_id=action,
            value=approval_id,
            channel=channel,
            team_id=team_id,
            message_ts="1700000002.000100",
            thread_ts=THREAD_TS,
            trigger_id="trigger-1",
        )
    )
    await bot.settle()
    return status


async def reject_with(bot: RunningBot, approval_id: str, reason: str, user: str = APPROVER) -> int:
    status, _ = await bot.send(
        bot.requests.view_submission(
            user=user,
            callback_id=REJECT_VIEW,
            private_metadata=approval_id,
            values={REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}},
        )
    )
    await bot.settle()
    return status


async def status_of(bot: RunningBot, approval_id: str) -> ApprovalStatus:
    approval = await get_approval(bot.app.db, approval_id)
    assert approval is not None
    return approval.status


def private_notes(slack: FakeSlackAPI, user: str) -> list[str]:
    return [
        str(c.args["text"]) for c in slack.calls_to("chat.postEphemeral") if c.args["user"] == user
    ]


def tool_outputs(model: ScriptedModel) -> list[str]:
    last = model.last_call
    assert last is not None
    return [
        str(item["output"])
        for item in last.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


async def test_a_paused_call_is_shown_with_its_own_buttons(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [request] = approval_messages(slack)
        assert request.args["thread_ts"] == THREAD_TS
        blocks = request.args["blocks"]
        rendered = json.dumps(blocks)
        assert "delete_customer" in rendered
        assert "c42" in rendered
        assert f"<@{ASKER}>" in rendered
        assert f"<@{APPROVER}>" in rendered
        [actions] = [b for b in blocks if b["type"] == "actions"]
        approve, reject = actions["elements"]
        assert approve["style"] == "primary"
        assert approve["text"]["text"].startswith("Approve")
        assert reject["style"] == "danger"
        assert reject["text"]["text"].startswith("Reject")
        assert approve["value"] == reject["value"]
        assert approve["value"].startswith("ap_")
        assert not executions


async def test_approve_runs_the_tool_once_and_the_answer_lands_in_the_thread(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer()
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        assert await click(bot, approval_id) == 200
        assert executions == Counter({"delete_customer:c42": 1})
        answers = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))
        assert answers[-1] == "Customer c42 is gone."
        updates = slack.calls_to("chat.update")
        assert f"Approved by <@{APPROVER}>" in json.dumps(updates[0].args["blocks"])
        assert all(b["type"] != "actions" for u in updates for b in u.args["blocks"])
        assert "customer c42 deleted" in json.dumps(updates[-1].args["blocks"])
        assert tool_outputs(model) == ["customer c42 deleted"]
        model.assert_complete()
        run = await _only_run(bot.app.db)
        assert run.status == RunStatus.COMPLETED


async def test_reject_opens_a_modal_and_the_reason_reaches_the_model_word_for_word(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("OK, I won't delete it.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, action=REJECT_ACTION)
        [modal] = slack.calls_to("views.open")
        assert modal.args["view"]["private_metadata"] == approval_id
        assert not slack.calls_to("chat.update")  # nothing decided until the modal is submitted
        reason = "Customer c42 has an open invoice — keep them.  "
        assert await reject_with(bot, approval_id, reason) == 200
        assert not executions
        assert tool_outputs(model) == [reason.strip()]
        assert "Rejected by" in json.dumps(slack.calls_to("chat.update")[0].args["blocks"])
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "OK, I won't delete it."


async def test_a_blank_reason_sends_the_default_sentence(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("Fine.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await reject_with(bot, approval_id, "   ")
        [output] = tool_outputs(model)
        assert "rejected" in output
        assert not executions


async def test_closing_the_modal_leaves_the_approval_pending(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, action=REJECT_ACTION)
        status, _ = await bot.send(
            bot.requests.view_closed(
                user=APPROVER, callback_id=REJECT_VIEW, private_metadata=approval_id
            )
        )
        await bot.settle()
        assert status == 200
        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING


@pytest.mark.parametrize(
    ("user", "allow_self", "allowed"),
    [
        (OUTSIDER, False, False),
        (ASKER, False, False),
        (GROUP_MEMBER, False, True),
        (APPROVER, False, True),
    ],
)
async def test_only_approvers_may_decide_and_others_are_told_privately(
    database_url: str,
    slack: FakeSlackAPI,
    executions: Counter[str],
    user: str,
    allow_self: bool,
    allowed: bool,
) -> None:
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(allow_self_approval=allow_self),
        model=delete_then_answer(),
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=user)
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        if allowed:
            assert approval.status == ApprovalStatus.APPROVED
            assert executions == Counter({"delete_customer:c42": 1})
        else:
            assert approval.status == ApprovalStatus.PENDING
            assert not executions
            assert not slack.calls_to("chat.update")
            [note] = private_notes(slack, user)
            assert "approve" in note.lower() or "self-approval" in note


async def test_the_asker_may_approve_when_self_approval_is_on(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(allow_self_approval=True, approvers=[ASKER])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=ASKER)
        assert executions == Counter({"delete_customer:c42": 1})


async def test_a_late_click_is_told_who_decided(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)
        await click(bot, approval_id, user=GROUP_MEMBER)
        [note] = private_notes(slack, GROUP_MEMBER)
        assert "already decided" in note
        assert f"<@{APPROVER}>" in note
        assert executions == Counter({"delete_customer:c42": 1})


async def test_twenty_concurrent_clicks_and_a_duplicate_delivery_run_the_tool_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer()
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        one_click = bot.requests.block_actions(
            user=APPROVER,
            action_id=APPROVE_ACTION,
            value=approval_id,
            channel=CHANNEL,
            message_ts="1700000002.000100",
            thread_ts=THREAD_TS,
        )
        statuses = await asyncio.gather(
            bot.send(one_click),
            bot.send(one_click),
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
                for user in [APPROVER, GROUP_MEMBER] * 9
            ),
        )
        await bot.settle()
        assert [s for s, _ in statuses] == [200] * 20
        assert executions == Counter({"delete_customer:c42": 1})
        assert (
            texts(slack.messages_in_thread(CHANNEL, THREAD_TS)).count("Customer c42 is gone.") == 1
        )
        assert len(slack.calls_to("chat.update")) == 2  # the decision, then the outcome


@pytest.mark.parametrize(
    "value",
    ["", "ap_doesnotexist000", "not-an-id", "ap_" + "x" * 3000, "'; DROP TABLE approvals; --"],
)
async def test_forged_button_values_get_a_private_answer_and_change_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str], value: str
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        status = await click(bot, value)
        assert status == 200
        assert private_notes(slack, APPROVER)
        assert not executions
        assert not slack.calls_to("chat.update")
        [approval_id] = approval_ids(approval_messages(slack)[0])
        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING


async def test_an_id_from_another_channel_or_team_is_refused(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        assert await click(bot, approval_id, channel="C0OTHER") == 200
        assert await click(bot, approval_id, team_id="T0EVIL") == 200
        assert len(private_notes(slack, APPROVER)) == 2
        assert not executions
        assert await status_of(bot, approval_id) == ApprovalStatus.PENDING


async def test_a_view_submission_for_a_decided_approval_changes_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)
        assert await reject_with(bot, approval_id, "too late", user=GROUP_MEMBER) == 200
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.APPROVED
        assert "already decided" in private_notes(slack, GROUP_MEMBER)[0]
        assert await reject_with(bot, "ap_unknownunknown", "x") == 200
        assert executions == Counter({"delete_customer:c42": 1})


async def test_parallel_calls_are_decided_separately(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [
                function_call("delete_customer", {"customer_id": "c1"}, call_id="call_a"),
                function_call("refund", {"order_id": "o9", "amount": 5}, call_id="call_b"),
            ],
            [assistant_message("Deleted c1; no refund.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        requests = approval_messages(slack)
        assert len(requests) == 2
        delete_id = approval_ids(requests[0])[0]
        refund_id = approval_ids(requests[1])[0]
        assert "c1" in json.dumps(requests[0].args["blocks"])
        assert "o9" in json.dumps(requests[1].args["blocks"])
        await click(bot, delete_id)
        assert not executions  # the run waits for every call of the pause
        assert model.remaining_steps == 1
        await reject_with(bot, refund_id, "no refunds today")
        assert executions == Counter({"delete_customer:c1": 1})
        assert sorted(tool_outputs(model)) == ["customer c1 deleted", "no refunds today"]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Deleted c1; no refund."


async def test_a_resume_that_pauses_again_posts_new_buttons_and_never_replays(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c1"}, call_id="call_1")],
            [function_call("delete_customer", {"customer_id": "c2"}, call_id="call_2")],
            [assistant_message("Both gone.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        first = approval_ids(approval_messages(slack)[0])[0]
        await click(bot, first)
        second = approval_ids(approval_messages(slack)[1])[0]
        assert second != first
        await click(bot, first, user=GROUP_MEMBER)  # a stale click on the old pause
        await click(bot, second)
        assert executions == Counter({"delete_customer:c1": 1, "delete_customer:c2": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Both gone."


async def test_tools_the_policy_does_not_gate_run_without_buttons(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("lookup_order", {"order_id": "o1"}, call_id="call_1")],
            [assistant_message("It shipped.")],
        ]
    )
    config = approval_config(tools={"lookup_order": {"require": "never"}})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot, "where is o1?")
        assert not approval_messages(slack)
        assert executions == Counter({"lookup_order:o1": 1})


async def test_per_tool_approvers_replace_the_global_list(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(tools={"delete_customer": {"approvers": ["UADMIN0001"]}})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=APPROVER)
        assert not executions
        await click(bot, approval_id, user="UADMIN0001")
        assert executions == Counter({"delete_customer:c42": 1})


async def test_undecided_approvals_expire_and_the_model_is_told(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("Nobody approved, so I did nothing.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await bot.app.sweeper.sweep()
        await bot.settle()
        assert model.remaining_steps == 1  # not due yet
        await _expire_now(bot.app.db)
        await bot.app.sweeper.sweep()
        await bot.settle()
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.EXPIRED
        assert "Expired" in json.dumps(slack.calls_to("chat.update")[0].args["blocks"])
        [output] = tool_outputs(model)
        assert "expired" in output
        assert not executions
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1].startswith("Nobody approved")
        await click(bot, approval_id)
        assert "already decided" in private_notes(slack, APPROVER)[0]


async def test_a_message_while_waiting_is_acknowledged_and_carried_into_the_resume(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = delete_then_answer("Deleted, and noted your follow-up.")
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        status, _ = await bot.send(
            bot.requests.channel_message(
                text="also, add a note to the ticket",
                user=ASKER,
                channel=CHANNEL,
                thread_ts=THREAD_TS,
                ts="1700000003.000100",
            )
        )
        await bot.settle()
        assert status == 200
        assert "waiting for approval" in texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
        assert model.remaining_steps == 1
        await click(bot, approval_id)
        last = model.last_call
        assert last is not None
        assert "also, add a note to the ticket" in json.dumps(last.input)
        assert executions == Counter({"delete_customer:c42": 1})
        assert len(model.calls) == 2  # the follow-up went into the resumed run, not a new one


async def test_a_model_error_on_resume_ends_the_run_visibly_and_keeps_the_decision(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            RuntimeError("model server on fire"),
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)
        assert executions == Counter({"delete_customer:c42": 1})
        last = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
        assert "Reference" in last
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.APPROVED
        run = await _only_run(bot.app.db)
        assert run.status == RunStatus.FAILED
        assert run.error_ref is not None
        assert run.error_ref in last
        await click(bot, approval_id)  # nothing to replay
        assert executions == Counter({"delete_customer:c42": 1})


async def test_a_raising_tool_is_reported_and_the_run_goes_on(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("explode", {"reason": "x"}, call_id="call_1")],
            [assistant_message("The tool failed.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id)
        assert executions == Counter({"explode:x": 1})
        assert "error" in json.dumps(slack.calls_to("chat.update")[-1].args["blocks"]).lower()
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "The tool failed."


async def test_state_from_a_newer_sdk_ends_the_run_visibly(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        run = await _only_run(bot.app.db)
        assert run.state is not None
        assert run.state_schema_version
        future = json.loads(run.state)
        future["$schemaVersion"] = "99.0"
        async with bot.app.db.write() as session:
            await session.execute(
                update(Run).where(col(Run.id) == run.id).values(state=json.dumps(future))
            )
        await click(bot, approval_id)
        assert not executions
        last = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
        assert "couldn't resume" in last
        run = await _only_run(bot.app.db)
        assert run.status == RunStatus.FAILED
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.APPROVED


async def test_a_tool_removed_from_the_config_since_the_pause_ends_the_run_visibly(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
    without_tools = approval_config()
    without_tools = without_tools.model_copy(
        update={"tools": without_tools.tools.model_copy(update={"modules": []})}
    )
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=without_tools,
        model=ScriptedModel([[assistant_message("should not be reached")]]),
    ) as bot:
        await click(bot, approval_id)
        assert not executions
        last = texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
        assert "Reference" in last
        run = await _only_run(bot.app.db)
        assert run.status == RunStatus.FAILED


async def test_a_restart_between_the_buttons_and_the_click_loses_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=ScriptedModel(
            [[function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")]]
        ),
    ) as first:
        await ask(first)
        [approval_id] = approval_ids(approval_messages(slack)[0])
    async with running_bot(
        database_url=database_url,
        slack=slack,
        config=approval_config(),
        model=ScriptedModel([[assistant_message("Done after the restart.")]]),
    ) as second:
        await click(second, approval_id)
        assert executions == Counter({"delete_customer:c42": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Done after the restart."


async def _only_run(db: Database) -> Run:
    async with db.read() as session:
        from sqlmodel import select

        [run] = (await session.scalars(select(Run))).all()
        return run


async def _expire_now(db: Database) -> None:
    async with db.write() as session:
        await session.execute(update(Approval).values(expires_at=utcnow()))

"""Four eyes through the thread: whoever's words reach a run asked for every call it makes.

An approver who writes "also delete customer 99" in a waiting thread must not then approve
that deletion: the message is carried into the resumed run, so its author is a requester of
the run's next calls, exactly like the person who started it.
"""

import json
from collections import Counter
from datetime import timedelta

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import update
from sqlmodel import select

from bot.slack.blocks import REJECT_ACTION
from storage.approvals import decide_approval, get_approval
from storage.database import Database
from storage.models import ApprovalStatus, Run, RunStatus, Thread, utcnow
from storage.outbox import Claimant
from storage.queue import threads_needing_work
from storage.runs import get_run
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
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
    texts,
)
from tests.integration.test_approvals import THREAD_TS, ask, click, private_notes, reject_with
from tests.integration.test_recovery import LEASE, press_retry, retry_buttons
from tests.running_app import RunningBot, running_bot
from tests.storage_steps import next_step

FOLLOW_UP = "also delete customer 99"


def two_deletions() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [function_call("delete_customer", {"customer_id": "99"}, call_id="call_2")],
            [assistant_message("Deleted c42 and 99.")],
        ]
    )


async def write_in_thread(bot: RunningBot, user: str, text: str = FOLLOW_UP) -> None:
    status, _ = await bot.send(
        bot.requests.channel_message(
            text=text, user=user, channel=CHANNEL, thread_ts=THREAD_TS, ts="1700000003.000100"
        )
    )
    assert status == 200
    await bot.settle()


def asked_by(card: RecordedCall) -> str:
    [line] = [
        str(element["text"])
        for block in card.args["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
        if element["text"].startswith("Asked by")
    ]
    return line.split(" · ")[0]


async def second_card_after_a_follow_up(bot: RunningBot, slack: FakeSlackAPI, author: str) -> str:
    """The story up to the second card: asked, follow-up deferred, first call approved."""
    await ask(bot)
    [first] = approval_ids(approval_messages(slack)[0])
    await write_in_thread(bot, author)
    assert "waiting for approval" in texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1]
    await click(bot, first, user=APPROVER if author != APPROVER else GROUP_MEMBER)
    first_card, second_card = approval_messages(slack)
    assert asked_by(first_card) == f"Asked by <@{ASKER}>"
    [second] = approval_ids(second_card)
    return second


async def test_an_approver_who_adds_a_request_in_the_thread_cannot_approve_it(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_deletions()
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [first] = approval_ids(approval_messages(slack)[0])
        await write_in_thread(bot, APPROVER)
        await click(bot, first, user=APPROVER)  # U0ALICE asked for this one: the approver may
        assert executions == Counter({"delete_customer:c42": 1})
        last = model.last_call
        assert last is not None
        assert FOLLOW_UP in json.dumps(last.input)  # the follow-up reached the resumed run

        _, second_card = approval_messages(slack)
        assert asked_by(second_card) == f"Asked by <@{ASKER}>, <@{APPROVER}>"
        [second] = approval_ids(second_card)
        updates_before = len(slack.calls_to("chat.update"))

        await click(bot, second, user=APPROVER)

        [refusal] = private_notes(slack, APPROVER)
        assert "self-approval" in refusal
        assert await _status(bot.app.db, second) == ApprovalStatus.PENDING
        assert executions == Counter({"delete_customer:c42": 1})
        assert len(slack.calls_to("chat.update")) == updates_before
        assert model.remaining_steps == 1

        await click(bot, second, user=GROUP_MEMBER)
        assert executions == Counter({"delete_customer:c42": 1, "delete_customer:99": 1})
        assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Deleted c42 and 99."


async def test_the_author_of_a_follow_up_cannot_reject_it_through_the_modal_either(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=two_deletions()
    ) as bot:
        second = await second_card_after_a_follow_up(bot, slack, APPROVER)

        await click(bot, second, user=APPROVER, action=REJECT_ACTION)
        await reject_with(bot, second, "changed my mind", user=APPROVER)

        assert not slack.calls_to("views.open")
        notes = private_notes(slack, APPROVER)
        assert len(notes) == 2
        assert all("self-approval" in note for note in notes)
        assert await _status(bot.app.db, second) == ApprovalStatus.PENDING
        assert executions == Counter({"delete_customer:c42": 1})


@pytest.mark.parametrize("in_group", [GROUP_MEMBER, ASKER], ids=["follow_up", "starter"])
async def test_a_requester_who_approves_through_a_user_group_is_refused(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str], in_group: str
) -> None:
    """Being in an approver group does not lift the self-approval rule, for any requester."""
    slack.usergroups[GROUP] = [GROUP_MEMBER, ASKER]
    config = approval_config(approvers=[GROUP])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=two_deletions()
    ) as bot:
        await ask(bot)
        [call] = approval_ids(approval_messages(slack)[0])
        if in_group == GROUP_MEMBER:
            await write_in_thread(bot, GROUP_MEMBER, "and customer 99 while you're at it")
            await click(bot, call, user=GROUP_MEMBER)  # only U0ALICE asked for the first call
            _, second_card = approval_messages(slack)
            assert asked_by(second_card) == f"Asked by <@{ASKER}>, <@{GROUP_MEMBER}>"
            [call] = approval_ids(second_card)
        before = dict(executions)

        await click(bot, call, user=in_group)

        [refusal] = private_notes(slack, in_group)
        assert "self-approval" in refusal
        assert await _status(bot.app.db, call) == ApprovalStatus.PENDING
        assert executions == before


async def test_with_self_approval_on_the_author_of_a_follow_up_may_approve_it(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = two_deletions()
    config = approval_config(allow_self_approval=True)
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        second = await second_card_after_a_follow_up(bot, slack, APPROVER)
        _, second_card = approval_messages(slack)
        assert asked_by(second_card) == f"Asked by <@{ASKER}>, <@{APPROVER}>"

        await click(bot, second, user=APPROVER)

        assert not private_notes(slack, APPROVER)
        assert await _status(bot.app.db, second) == ApprovalStatus.APPROVED
        assert executions == Counter({"delete_customer:c42": 1, "delete_customer:99": 1})


async def test_a_non_approver_who_submits_the_reject_modal_is_refused_and_nothing_is_decided(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """Slack opens the modal only for an approver, but a signed view_submission can be sent by
    anyone who has the approval id: the submission is authorized again."""
    model = two_deletions()
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])

        assert await reject_with(bot, approval_id, "forged", user=OUTSIDER) == 200

        [refusal] = private_notes(slack, OUTSIDER)
        assert "not one of the approvers" in refusal
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.PENDING
        assert approval.decided_by is None
        assert approval.reason is None
        assert not slack.calls_to("chat.update")
        assert model.remaining_steps == 2
        assert not executions


async def test_the_author_of_a_carried_message_may_retry_the_interrupted_run(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """Retry is for whoever asked: the author of a follow-up is one of them."""
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Done.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        db = bot.app.db
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await write_in_thread(bot, OUTSIDER)
        decision = await decide_approval(
            db,
            approval_id=approval_id,
            status=ApprovalStatus.REJECTED,
            decided_by=APPROVER,
            by=Claimant("dead:1"),
        )
        assert decision is not None
        assert decision.resume_queued
        # A process that then died had claimed the resume, with the follow-up in it.
        await _take_the_resume_and_die(db)
        run = await _only_run(db)
        assert run.requesters == [ASKER, OUTSIDER]
        await bot.app.sweeper.sweep()
        await bot.settle()
        assert retry_buttons(slack)

        await press_retry(bot, run.id, "U0STRANGER")
        assert "who asked" in slack.calls_to("chat.postEphemeral")[-1].args["text"]
        await press_retry(bot, run.id, OUTSIDER)

        assert "Retried by" in slack.calls_to("chat.update")[-1].args["text"]
        retried = await get_run(db, run.id)
        assert retried is not None
        assert retried.status == RunStatus.COMPLETED
        assert not executions


async def _take_the_resume_and_die(db: Database) -> None:
    """Claim the resume job as a process that dies at once, leaving its lease to expire."""
    [thread_key] = await threads_needing_work(db)
    step = await next_step(db, thread_key=thread_key, owner="dead:1", ttl=LEASE)
    assert step is not None
    assert step.resume is not None
    async with db.write() as session:
        await session.execute(
            update(Thread).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def _status(db: Database, approval_id: str) -> ApprovalStatus:
    approval = await get_approval(db, approval_id)
    assert approval is not None
    return approval.status


async def _only_run(db: Database) -> Run:
    async with db.read() as session:
        [run] = (await session.scalars(select(Run))).all()
        return run


async def test_an_approver_whose_earlier_words_the_run_reads_cannot_approve_its_calls(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """The approver's own request answered earlier in the thread is in the history a later
    run reads: someone else's "go ahead" there must not let the approver approve it."""
    model = ScriptedModel(
        [
            [assistant_message("Shall I delete c42? Someone has to say so.")],
            [function_call("delete_customer", {"customer_id": "c42"}, call_id="call_1")],
            [assistant_message("Deleted c42.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await bot.send(
            bot.requests.mention(
                text="we should delete customer c42", user=APPROVER, channel=CHANNEL, ts=THREAD_TS
            )
        )
        await bot.settle()
        await write_in_thread(bot, ASKER, "go ahead")
        [card] = approval_messages(slack)
        assert asked_by(card) == f"Asked by <@{ASKER}>, <@{APPROVER}>"
        [approval_id] = approval_ids(card)

        await click(bot, approval_id, user=APPROVER)

        [refusal] = private_notes(slack, APPROVER)
        assert "self-approval" in refusal
        assert not executions
        await click(bot, approval_id, user=GROUP_MEMBER)
        assert executions == Counter({"delete_customer:c42": 1})


async def test_an_approver_whose_thread_message_a_run_reads_cannot_approve_its_calls(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """Before anyone asked the bot, an approver wrote "also refund order 42" in the thread. The
    run that someone else's mention starts reads that message, so the approver asked for the
    refund as much as the person who mentioned the bot."""
    slack.seed_thread(
        CHANNEL,
        THREAD_TS,
        [
            {"user": OUTSIDER, "text": "order 42 arrived broken", "ts": THREAD_TS},
            {"user": APPROVER, "text": "also refund order 42", "ts": "1700000002.000100"},
            {"user": ASKER, "text": "<@UBOT> please sort this out", "ts": "1700000003.000100"},
        ],
    )
    model = ScriptedModel(
        [
            [function_call("refund", {"order_id": "42", "amount": 10}, call_id="call_1")],
            [assistant_message("Refunded order 42.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await bot.send(
            bot.requests.mention(
                text="please sort this out",
                user=ASKER,
                channel=CHANNEL,
                ts="1700000003.000100",
                thread_ts=THREAD_TS,
            )
        )
        await bot.settle()
        first = model.first_call
        assert first is not None
        assert "also refund order 42" in json.dumps(first.input)
        [card] = approval_messages(slack)
        assert asked_by(card) == f"Asked by <@{ASKER}>, <@{APPROVER}>, <@{OUTSIDER}>"
        [approval_id] = approval_ids(card)

        await click(bot, approval_id, user=APPROVER)

        [refusal] = private_notes(slack, APPROVER)
        assert "self-approval" in refusal
        assert await _status(bot.app.db, approval_id) == ApprovalStatus.PENDING
        assert not executions
        await click(bot, approval_id, user=GROUP_MEMBER)
        assert executions == Counter({"refund:42": 1})

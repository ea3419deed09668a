"""Reminders and escalation end to end: the sweep makes them once, the fake Slack carries them.

Time is moved by making a step due in the database (as the expiry tests do), never by waiting.
"""

import asyncio
import json
from collections import Counter

from sqlalchemy import update

from storage import audit
from storage.approvals import get_approval
from storage.database import Database
from storage.models import Approval, ApprovalStatus, OutboxMessage, utcnow
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import (
    THREAD_TS,
    ask,
    click,
    delete_then_answer,
    private_notes,
)
from tests.running_app import RunningBot, running_bot

SECOND = "UAPPROVER2"
ONCALL = "U0ONCALL1"
ONCALL_GROUP = "S0ONCALL"
ONCALL_MEMBER = "U0ONCALLM"


async def _due(db: Database, column: str) -> None:
    async with db.write() as session:
        await session.execute(update(Approval).values({column: utcnow()}))


async def _sweep(bot: RunningBot) -> None:
    await bot.app.sweeper.sweep()
    await bot.settle()


def _mentions_in_thread(slack: FakeSlackAPI, slack_id: str) -> list[str]:
    return [
        str(c.args.get("text"))
        for c in slack.messages_in_thread(CHANNEL, THREAD_TS)
        if f"<!subteam^{slack_id}>" in str(c.args.get("text"))
    ]


async def _steps_on_record(db: Database, approval_id: str) -> list[tuple[str, str | None, str]]:
    return [
        (e.event, e.user, e.detail or "")
        for e in await audit.entries(db, approval_id=approval_id)
        if e.event in ("reminded", "escalated")
    ]


async def test_a_reminder_goes_once_to_each_approver_who_has_not_decided(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(
        approvers=[APPROVER, SECOND, ASKER, GROUP],
        remind_after="30m",
        tools={"delete_customer": {"approvals_needed": 2}},
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        card = approval_messages(slack)[0]
        [approval_id] = approval_ids(card)
        await click(bot, approval_id, user=APPROVER)  # 1 of 2
        await _sweep(bot)
        assert not slack.dms  # not due yet

        await _due(bot.app.db, "remind_at")
        await _sweep(bot)
        await _sweep(bot)

        # Not the one who voted, not the one who asked; the group once, in the thread.
        assert set(slack.dms) == {SECOND}  # GROUP_MEMBER is told through the group
        registry = bot.app.metrics.registry
        assert registry.get_sample_value("threadgate_approval_reminders_total") == 1
        [dm] = slack.dms[SECOND]
        permalink = slack.calls_to("chat.getPermalink")[0]
        assert permalink.args["message_ts"] == slack.posted[CHANNEL][0]["ts"]
        card_ts = slack.posted[CHANNEL][0]["ts"].replace(".", "")
        link = f"https://{slack.team_domain}.slack.com/archives/{CHANNEL}/p{card_ts}"
        assert link in dm["text"]
        assert "`delete_customer`" in dm["text"]
        assert f"<@{ASKER}>" in dm["text"]
        assert len(_mentions_in_thread(slack, GROUP)) == 1
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.reminded_at is not None
        assert approval.status == ApprovalStatus.PENDING
        assert await _steps_on_record(bot.app.db, approval_id) == [
            ("reminded", "threadgate", f"{SECOND}, {GROUP}")
        ]
        assert not executions


async def test_escalation_lets_the_added_approvers_decide_only_once_it_fired(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    slack.usergroups[ONCALL_GROUP] = [ONCALL_MEMBER]
    config = approval_config(
        remind_after="30m",
        escalate_after="2h",
        escalate_to=[ONCALL, ONCALL_GROUP],
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await click(bot, approval_id, user=ONCALL)
        assert "not one of the approvers" in private_notes(slack, ONCALL)[0]

        await _due(bot.app.db, "remind_at")
        await _sweep(bot)
        assert set(slack.dms) == {APPROVER}  # reminders go to the approvers, not yet on-call

        await _due(bot.app.db, "escalate_at")
        await _sweep(bot)
        await _sweep(bot)
        escalated = bot.app.metrics.registry.get_sample_value(
            "threadgate_approval_escalations_total"
        )
        assert escalated == 1
        [dm] = slack.dms[ONCALL]
        assert "escalated" in dm["text"]
        assert "`delete_customer`" in dm["text"]
        assert len(_mentions_in_thread(slack, ONCALL_GROUP)) == 1
        assert set(slack.dms) == {APPROVER, ONCALL}
        updated = slack.calls_to("chat.update")[-1]
        assert f"Escalated to <@{ONCALL}>" in json.dumps(updated.args["blocks"])
        assert not executions

        await click(bot, approval_id, user=ONCALL_MEMBER)
        assert executions == Counter({"delete_customer:c42": 1})
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.decided_by == ONCALL_MEMBER


async def test_a_requester_on_call_is_not_told_and_still_may_not_decide(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(escalate_after="2h", escalate_to=[ASKER])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await _due(bot.app.db, "escalate_at")
        await _sweep(bot)
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.escalated_at is not None
        assert not slack.dms
        await click(bot, approval_id, user=ASKER)
        assert "asked for this call" in private_notes(slack, ASKER)[0]
        assert not executions


async def test_steps_fire_once_however_many_sweep_at_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(remind_after="30m", escalate_after="2h", escalate_to=[ONCALL])
    async with (
        running_bot(
            database_url=database_url, slack=slack, config=config, model=delete_then_answer()
        ) as one,
        running_bot(database_url=database_url, slack=slack, config=config) as two,
    ):
        await ask(one)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        await _due(one.app.db, "remind_at")
        await _due(one.app.db, "escalate_at")
        sweeps = [bot.app.sweeper.sweep() for bot in (one, two) for _ in range(3)]
        await asyncio.gather(*sweeps)
        await asyncio.gather(one.settle(), two.settle())
        # A thread's posts keep their order across processes: what one process owes waits
        # behind what the other holds until that claim runs out; let it run out now.
        await _retry_outbox_now(one.app.db)
        await asyncio.gather(_sweep(one), _sweep(two))

        assert len(slack.dms[APPROVER]) == 1
        assert len(slack.dms[ONCALL]) == 1
        assert len(_mentions_in_thread(slack, GROUP)) == 1
        assert await _steps_on_record(one.app.db, approval_id) == [
            ("reminded", "threadgate", f"{APPROVER}, {GROUP}"),
            ("escalated", "threadgate", ONCALL),
        ]
        approval = await get_approval(one.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.PENDING


async def test_expiry_comes_last_and_a_call_past_it_is_not_reminded(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(remind_after="30m", escalate_after="2h", escalate_to=[ONCALL])
    model = delete_then_answer("Nobody approved, so I did nothing.")
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        for column in ("remind_at", "escalate_at", "expires_at"):
            await _due(bot.app.db, column)
        await _sweep(bot)
        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        assert approval.status == ApprovalStatus.EXPIRED
        assert approval.reminded_at is None
        assert approval.escalated_at is None
        assert not slack.dms
        assert not _mentions_in_thread(slack, GROUP)


async def test_a_reminder_for_a_call_decided_meanwhile_is_not_sent(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    config = approval_config(approvers=[APPROVER], remind_after="30m")
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=delete_then_answer()
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        slack.fail("chat.getPermalink", status=500, times=20)  # the reminder waits in the outbox
        await _due(bot.app.db, "remind_at")
        await _sweep(bot)
        assert not slack.dms
        await click(bot, approval_id, user=APPROVER)
        slack.reset()
        await _retry_outbox_now(bot.app.db)
        await _sweep(bot)
        assert not slack.dms
        assert executions == Counter({"delete_customer:c42": 1})


async def _retry_outbox_now(db: Database) -> None:
    async with db.write() as session:
        await session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))

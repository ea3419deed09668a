"""The App Home inbox and the approvals channel end to end: signed events and clicks over HTTP,
the fake Web API, a scripted model, on both databases."""

import json
from collections import Counter
from typing import Any

from agents.testing import ScriptedModel, assistant_message, function_call

from bot.slack.blocks import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_VIEW,
)
from storage.approvals import get_approval
from storage.models import ApprovalStatus
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP_MEMBER,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
)
from tests.integration.test_approvals import click, private_notes
from tests.running_app import RunningBot, running_bot

MIRROR = "C0APPROVALS"


def calls(*steps: tuple[str, dict[str, Any]]) -> list[Any]:
    return [function_call(tool, args, call_id=f"call_{i}") for i, (tool, args) in enumerate(steps)]


async def ask_in(bot: RunningBot, thread_ts: str, *, user: str = ASKER, text: str = "do it") -> str:
    """Ask in a thread of its own; the id of the card it posted there."""
    status, _ = await bot.send(
        bot.requests.mention(text=text, user=user, channel=CHANNEL, ts=thread_ts)
    )
    assert status == 200
    await bot.settle()
    [card] = [c for c in approval_messages(bot.slack) if c.args.get("thread_ts") == thread_ts]
    [approval_id] = approval_ids(card)
    return approval_id


async def open_home(bot: RunningBot, user: str) -> list[str]:
    status, _ = await bot.send(bot.requests.app_home_opened(user=user))
    assert status == 200
    await bot.settle()
    return home_ids(bot.slack, user)


def home_ids(slack: FakeSlackAPI, user: str) -> list[str]:
    view = slack.home_of(user)
    assert view is not None
    return [
        element["value"]
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == APPROVE_ACTION
    ]


def home_text(slack: FakeSlackAPI, user: str) -> str:
    view = slack.home_of(user)
    assert view is not None
    return json.dumps(view["blocks"])


async def home_click(
    bot: RunningBot, approval_id: str, *, user: str, team_id: str | None = None
) -> None:
    status, _ = await bot.send(
        bot.requests.home_action(
            user=user, action_id=APPROVE_ACTION, value=approval_id, team_id=team_id
        )
    )
    assert status == 200
    await bot.settle()


def updates_of(slack: FakeSlackAPI, channel: str, ts: str) -> list[RecordedCall]:
    return [
        c
        for c in slack.calls_to("chat.update")
        if c.args.get("channel") == channel and c.args.get("ts") == ts
    ]


def publishes_for(slack: FakeSlackAPI, user: str) -> list[RecordedCall]:
    return [c for c in slack.calls_to("views.publish") if c.args.get("user_id") == user]


def direct_messages(slack: FakeSlackAPI, user: str) -> list[str]:
    return [
        str(c.args["text"]) for c in slack.calls_to("chat.postMessage") if c.args["channel"] == user
    ]


async def test_the_home_inbox_lists_exactly_what_the_viewer_may_decide_and_decides_it_once(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            calls(("delete_customer", {"customer_id": "c1"})),  # t1: the viewer may decide it
            calls(("refund", {"order_id": "o2", "amount": 5})),  # t2: the viewer votes on it
            calls(("lookup_order", {"order_id": "o3"})),  # t3: another tool's approvers
            calls(("delete_customer", {"customer_id": "c4"})),  # t4: the viewer asked for it
            calls(("delete_customer", {"customer_id": "c5"})),  # t5: decided already
            [assistant_message("c5 is gone.")],
            [assistant_message("c1 is gone.")],
        ]
    )
    config = approval_config(
        tools={"refund": {"approvals_needed": 2}, "lookup_order": {"approvers": [OUTSIDER]}}
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        a1 = await ask_in(bot, "1700000101.000100")
        a2 = await ask_in(bot, "1700000102.000100")
        await click(bot, a2, user=APPROVER)  # 1 of 2: it waits for somebody else
        await ask_in(bot, "1700000103.000100")
        a4 = await ask_in(bot, "1700000104.000100", user=APPROVER)
        a5 = await ask_in(bot, "1700000105.000100")
        await click(bot, a5, user=GROUP_MEMBER)
        assert executions == Counter({"delete_customer:c5": 1})

        assert await open_home(bot, APPROVER) == [a1]
        assert "`delete_customer`" in home_text(bot.slack, APPROVER)
        assert f"https://{slack.team_domain}.slack.com/archives/{CHANNEL}/p1700000101000100" in (
            home_text(bot.slack, APPROVER)
        )
        assert "Approved `refund`" in home_text(bot.slack, APPROVER)  # the recent decisions
        # Soonest to expire first, as `/threadgate pending` lists them; not a5.
        assert await open_home(bot, GROUP_MEMBER) == [a1, a2, a4]
        assert await open_home(bot, OUTSIDER) != []  # lookup_order is theirs
        assert a1 not in home_ids(slack, OUTSIDER)

        published = len(publishes_for(slack, APPROVER))
        await home_click(bot, a1, user=APPROVER)
        # One redraw of the clicker's Home: the click's own, not the change's refresh too.
        assert len(publishes_for(slack, APPROVER)) == published + 1

        assert executions == Counter({"delete_customer:c5": 1, "delete_customer:c1": 1})
        approval = await get_approval(bot.app.db, a1)
        assert approval is not None
        assert approval.status == ApprovalStatus.APPROVED
        assert approval.message_ts is not None
        [*_, decided] = updates_of(slack, CHANNEL, approval.message_ts)
        assert "Approved by" in json.dumps(decided.args["blocks"])
        # The other approver's Home was drawn again without it; the clicker's too.
        assert home_ids(slack, GROUP_MEMBER) == [a2, a4]
        assert home_ids(slack, APPROVER) == []
        model.assert_complete()

        await home_click(bot, a1, user=APPROVER)  # a stale Home: told privately, nothing runs
        assert "already decided" in direct_messages(slack, APPROVER)[-1]
        assert executions["delete_customer:c1"] == 1
        assert not private_notes(slack, APPROVER)


async def test_a_home_click_of_another_team_or_by_a_non_approver_decides_nothing(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel([calls(("delete_customer", {"customer_id": "c1"}))])
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        a1 = await ask_in(bot, "1700000201.000100")
        await home_click(bot, a1, user=APPROVER, team_id="T0OTHER")
        await home_click(bot, a1, user=OUTSIDER)
        await home_click(bot, a1, user=ASKER)  # self-approval is off
        assert "can't find" in direct_messages(slack, APPROVER)[-1]
        assert "not one of the approvers" in direct_messages(slack, OUTSIDER)[-1]
        assert "self-approval is turned off" in direct_messages(slack, ASKER)[-1]
        approval = await get_approval(bot.app.db, a1)
        assert approval is not None
        assert approval.status == ApprovalStatus.PENDING
        assert not executions


async def test_a_long_inbox_shows_twenty_and_counts_the_rest_within_slacks_limit(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel(
        [calls(*[("delete_customer", {"customer_id": f"c{i}"}) for i in range(40)])]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await bot.send(
            bot.requests.mention(text="go", user=ASKER, channel=CHANNEL, ts="1700000301.000100")
        )
        await bot.settle()
        assert len(approval_messages(slack)) == 40
        assert len(await open_home(bot, APPROVER)) == 20
        assert "and 20 more" in home_text(slack, APPROVER)
        published = slack.calls_to("views.publish")[-1]
        assert published.args["user_id"] == APPROVER
        assert len(published.args["view"]["blocks"]) <= 100


async def test_a_mirrored_card_decides_the_call_and_both_copies_show_it(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [calls(("delete_customer", {"customer_id": "c1"})), [assistant_message("c1 is gone.")]]
    )
    config = approval_config(mirror_to=MIRROR)
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        a1 = await ask_in(bot, "1700000401.000100")
        [mirrored] = [c for c in approval_messages(slack) if c.args["channel"] == MIRROR]
        assert mirrored.args.get("thread_ts") is None  # a message of its own there
        assert approval_ids(mirrored) == [a1]
        link = f"https://{slack.team_domain}.slack.com/archives/{CHANNEL}/p1700000401000100"
        assert link in json.dumps(mirrored.args["blocks"])

        # Another team's click on the mirror's button, or a click from another channel, finds
        # nothing to decide.
        await click(bot, a1, user=APPROVER, channel=MIRROR, team_id="T0OTHER")
        await click(bot, a1, user=APPROVER, channel="C0ELSEWHERE")
        assert (
            private_notes(slack, APPROVER)
            == ["I can't find that approval request here. It may have been removed."] * 2
        )
        assert not executions

        await click(bot, a1, user=APPROVER, channel=MIRROR)

        assert executions == Counter({"delete_customer:c1": 1})
        approval = await get_approval(bot.app.db, a1)
        assert approval is not None
        assert approval.status == ApprovalStatus.APPROVED
        assert approval.message_ts is not None
        assert approval.mirror_ts is not None
        for channel, ts in ((CHANNEL, approval.message_ts), (MIRROR, approval.mirror_ts)):
            [*_, last] = updates_of(slack, channel, ts)
            assert "Approved by" in json.dumps(last.args["blocks"])
            assert not any(b["type"] == "actions" for b in last.args["blocks"])
        model.assert_complete()


async def test_a_reject_modal_opened_from_the_home_answers_by_direct_message(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    """The modal carries where it was opened: its submission, like the Home click, has no
    channel of the person's to answer in privately."""
    model = ScriptedModel(
        [calls(("delete_customer", {"customer_id": "c7"})), [assistant_message("Done.")]]
    )
    config = approval_config(approvers=[APPROVER, GROUP_MEMBER])
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        approval_id = await ask_in(bot, "1700000701.000100")
        assert await open_home(bot, APPROVER) == [approval_id]
        status, _ = await bot.send(
            bot.requests.home_action(
                user=APPROVER, action_id=REJECT_ACTION, value=approval_id, trigger_id="t-1"
            )
        )
        assert status == 200
        await bot.settle()
        [modal] = slack.calls_to("views.open")
        metadata = modal.args["view"]["private_metadata"]
        assert metadata == approval_id + ":home"

        await click(bot, approval_id, user=GROUP_MEMBER)  # decided in the thread meanwhile
        assert executions == Counter({"delete_customer:c7": 1})
        status, _ = await bot.send(
            bot.requests.view_submission(
                user=APPROVER,
                callback_id=REJECT_VIEW,
                private_metadata=metadata,
                values={REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": "no"}}},
            )
        )
        assert status == 200
        await bot.settle()
        assert "already decided" in direct_messages(slack, APPROVER)[-1]
        assert not private_notes(slack, APPROVER)
        stored = await get_approval(bot.app.db, approval_id)
        assert stored is not None
        assert stored.status == ApprovalStatus.APPROVED

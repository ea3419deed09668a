"""`/threadgate` over signed HTTP: every answer is private, `pending` lists exactly what the
person may decide now with links to the cards, `audit` is for admins only."""

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import update
from sqlmodel import col

from bot.config import AdminConfig, Config
from bot.slack.audit_text import BAD_WINDOW
from bot.slack.blocks import REJECT_ACTION
from bot.slack.listeners.commands import (
    AUDIT_UNAVAILABLE,
    FOR_ADMINS,
    HELP,
    PENDING_UNAVAILABLE,
)
from bot.slack.pending_text import NOTHING
from storage import audit
from storage.approvals import get_approval
from storage.models import AuditEntry, AuditEvent, utcnow
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
)
from tests.integration.test_approvals import ask, click, reject_with
from tests.integration.test_outages import outage
from tests.running_app import RunningBot, running_bot

FINANCE = "UFINANCE01"


async def command(bot: RunningBot, text: str, user: str = ASKER) -> tuple[str, dict[str, Any]]:
    """The ack's body ("" when the answer comes later) and the answer the person saw."""
    name = f"command-{uuid.uuid4().hex}"
    url = bot.slack.response_url(name)
    status, body = await bot.send(
        bot.requests.slash_command(command="/threadgate", text=text, user=user, response_url=url)
    )
    assert status == 200
    await bot.settle()
    if body:
        return body, json.loads(body)
    [answer] = [c for c in bot.slack.calls_to("response_url") if c.path.endswith(name)]
    return body, answer.args


async def answer_text(bot: RunningBot, text: str, user: str = ASKER) -> str:
    _, answer = await command(bot, text, user)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def test_help_and_an_unknown_subcommand_answer_privately_with_the_commands(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        assert await answer_text(bot, "") == HELP
        assert await answer_text(bot, "HELP") == HELP
        for subcommand in ("pending", "policy", "audit [7d]", "feedback", "help"):
            assert f"`/threadgate {subcommand}`" in HELP
        unknown = await answer_text(bot, "frobnicate <!channel>")
        assert unknown == "I don't know `frobnicate &lt;!channel&gt;`. " + HELP
        assert (await answer_text(bot, "pending now")).startswith("I don't know `pending now`.")
        assert not slack.calls_to("response_url")
        assert not slack.calls_to("chat.postMessage")


async def test_policy_names_the_tools_rules_and_approvers_in_force(
    database_url: str, slack: FakeSlackAPI
) -> None:
    config = approval_config(
        tools={"refund": {"approvers": [FINANCE]}, "lookup_order": {"require": "never"}},
        rules=[{"tools": ["refund"], "when": {"amount": {"gt": 1000}}, "approvals_needed": 2}],
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=ScriptedModel([])
    ) as bot:
        text = await answer_text(bot, "policy", user=OUTSIDER)
    assert "1. `refund` when amount &gt; 1000 → 2 approvals" in text
    assert f"• `refund` needs approval by <@{FINANCE}>" in text
    assert f"• `delete_customer` needs approval by <@{APPROVER}>, <!subteam^SAPPROVERS>" in text
    assert "• `lookup_order` runs without approval unless a rule says so" in text
    assert "Requests expire after 1 day; whoever asked for a call may not approve it." in text


def pending_config() -> Config:
    return approval_config(
        tools={
            "refund": {"approvers": [FINANCE]},
            "delete_customer": {"approvals_needed": 2},
        },
    )


CALLS: list[tuple[str, str, tuple[str, dict[str, Any]]]] = [  # thread ts, who asks, the call
    ("1700000101.000100", ASKER, ("delete_customer", {"customer_id": "c1"})),
    ("1700000102.000100", ASKER, ("refund", {"order_id": "o2", "amount": 20})),
    ("1700000103.000100", APPROVER, ("explode", {"reason": "mine <!channel>"})),
    ("1700000104.000100", ASKER, ("delete_customer", {"customer_id": "c4"})),
    ("1700000105.000100", ASKER, ("explode", {"reason": "yours"})),
]


def pending_model() -> ScriptedModel:
    steps: list[Any] = [
        [function_call(name, args, call_id=f"call_{n}")]
        for n, (_, _, (name, args)) in enumerate(CALLS)
    ]
    steps.append([assistant_message("Not deleted.")])  # after the rejection
    return ScriptedModel(steps)


async def card_ids(bot: RunningBot) -> dict[str, str]:
    """The approval id of each thread's card, by thread ts."""
    found = {}
    for card in approval_messages(bot.slack):
        [approval_id] = approval_ids(card)
        found[str(card.args["thread_ts"])] = approval_id
    return found


async def link_to(bot: RunningBot, approval_id: str) -> str:
    approval = await get_approval(bot.app.db, approval_id)
    assert approval is not None
    assert approval.message_ts is not None
    return (
        f"https://{bot.slack.team_domain}.slack.com/archives/{CHANNEL}/"
        f"p{approval.message_ts.replace('.', '')}?thread_ts={approval.thread_ts}&cid={CHANNEL}"
    )


async def test_pending_lists_exactly_what_the_person_may_decide_now_with_links(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=pending_config(), model=pending_model()
    ) as bot:
        for ts, user, _ in CALLS:
            status, _ = await bot.send(
                bot.requests.mention(text="please", user=user, channel=CHANNEL, ts=ts)
            )
            assert status == 200
            await bot.settle()
        ids = await card_ids(bot)
        assert len(ids) == len(CALLS)
        quorum, refund, own, rejected, yours = (ids[ts] for ts, _, _ in CALLS)
        assert await click(bot, quorum, user=APPROVER) == 200  # 1 of 2: voted already
        assert await click(bot, rejected, user=APPROVER, action=REJECT_ACTION) == 200
        assert await reject_with(bot, rejected, "no") == 200

        ack, answer = await command(bot, "pending", user=APPROVER)
        assert ack == ""  # answered after the ack, through the response_url
        assert answer["response_type"] == "ephemeral"
        text = answer["text"]
        assert text.startswith("*1 call* waiting for you to decide")
        assert text.count("\n• ") == 1
        assert '`explode` {"reason": "yours"}' in text
        assert f"<{await link_to(bot, yours)}|open the card>" in text
        assert f"asked by <@{ASKER}> in <#{CHANNEL}>" in text

        member = await answer_text(bot, "pending", user=GROUP_MEMBER)  # through the group
        assert member.startswith("*3 calls* waiting")
        for approval_id in (quorum, own, yours):
            assert f"<{await link_to(bot, approval_id)}|open the card>" in member
        assert "needs 2 approvals" in member
        assert '{"reason": "mine &lt;!channel&gt;"}' in member  # the model's text, escaped
        assert await link_to(bot, refund) not in member
        assert await link_to(bot, rejected) not in member

        finance = await answer_text(bot, "pending", user=FINANCE)
        assert finance.count("\n• ") == 1
        assert f"<{await link_to(bot, refund)}|open the card>" in finance

        assert await answer_text(bot, "pending", user=OUTSIDER) == NOTHING
        # One question to Slack per card: a permalink never changes, so it is remembered.
        assert len(slack.calls_to("chat.getPermalink")) == 4


ADMIN = "U0ADMIN001"
ADMINS = "S0ADMINS"
GROUP_ADMIN = "U0GRPADMIN"


async def test_audit_is_shown_to_admins_only_newest_last_and_bounded(
    database_url: str, slack: FakeSlackAPI
) -> None:
    slack.usergroups[ADMINS] = [GROUP_ADMIN]
    config = approval_config().model_copy(update={"admin": AdminConfig(users=[ADMIN, ADMINS])})
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c1"}, call_id="call_1")],
            [assistant_message("Gone.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=model
    ) as bot:
        await ask(bot)
        [approval_id] = approval_ids(approval_messages(slack)[0])
        assert await click(bot, approval_id, user=APPROVER) == 200

        for user in (APPROVER, ASKER, GROUP_MEMBER):  # approvers are not admins
            assert await answer_text(bot, "audit", user=user) == FOR_ADMINS
        assert await answer_text(bot, "audit 7 days", user=ADMIN) == BAD_WINDOW
        assert await answer_text(bot, "audit 0h", user=ADMIN) == BAD_WINDOW

        text = await answer_text(bot, "audit", user=ADMIN)
        assert text.startswith("*Audit log, last 7d* (4 entries, newest last):\n")
        events = [line.split(" · ")[1:4] for line in text.splitlines()[1:]]
        assert events == [
            ["*requested*", "`delete_customer`", "by threadgate"],
            ["*approved*", "`delete_customer`", f"by <@{APPROVER}>"],
            ["*started*", "`delete_customer`", "by threadgate"],
            ["*executed*", "`delete_customer`", "by threadgate"],
        ]
        assert f"in <#{CHANNEL}>" in text
        assert f"approval `{approval_id}`" in text
        assert await answer_text(bot, "AUDIT 12h", user=GROUP_ADMIN) == text.replace(
            "last 7d", "last 12h"
        )

        approval = await get_approval(bot.app.db, approval_id)
        assert approval is not None
        async with bot.app.db.write() as session:
            for n in range(80):
                detail = f"note {n} <!here>"
                await audit.append(session, AuditEvent.REMINDED, approval, user=None, detail=detail)
            await session.execute(
                update(AuditEntry)
                .where(col(AuditEntry.event) == AuditEvent.REQUESTED)
                .values(at=utcnow() - timedelta(days=8))
            )

        text = await answer_text(bot, "audit", user=ADMIN)
        lines = text.splitlines()
        assert lines[0] == "*Audit log, last 7d* (83 entries, newest last):"
        shown = len(lines) - 2
        assert lines[1] == (
            f"_{83 - shown} older entries of these 7d not shown here: "
            "`python -m bot audit --since 7d` prints them all._"
        )
        assert lines[-1].endswith(" · note 79 &lt;!here&gt; · approval `" + approval_id + "`")
        assert "<!here>" not in text
        assert len(text) < 3900
        assert "*requested*" not in text
        nine_days = await answer_text(bot, "audit 9d", user=ADMIN)
        assert nine_days.startswith("*Audit log, last 9d* (84 entries, newest last):\n")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_pending_and_audit_while_the_database_is_down_say_so_privately(
    database_url: str, slack: FakeSlackAPI
) -> None:
    config = approval_config().model_copy(update={"admin": AdminConfig(users=[ADMIN])})
    async with running_bot(
        database_url=database_url, slack=slack, config=config, model=ScriptedModel([])
    ) as bot:
        async with outage(database_url):
            assert await answer_text(bot, "pending", user=APPROVER) == PENDING_UNAVAILABLE
            assert await answer_text(bot, "audit", user=ADMIN) == AUDIT_UNAVAILABLE
            assert await answer_text(bot, "audit", user=APPROVER) == FOR_ADMINS
        assert await answer_text(bot, "pending", user=APPROVER) == NOTHING

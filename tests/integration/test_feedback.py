"""Feedback on answers over signed HTTP: a click is acked, stored once per person, answered
privately; a forged or malformed one stores nothing; approvers count them with a command."""

import json
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from agents.testing import ScriptedModel, assistant_message
from sqlalchemy import select, update
from sqlmodel import col

from bot.runtime.answer_feedback import (
    FOR_APPROVERS,
    INVALID_BUTTON,
    THANKS,
    THANKS_AGAIN,
    UNKNOWN_ANSWER,
)
from bot.slack.feedback import FEEDBACK_ACTION, feedback_block
from storage.ids import new_run_id
from storage.models import Feedback, Run, utcnow
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import FORM, SignedRequest, SlackRequestBuilder
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    GROUP_MEMBER,
    OUTSIDER,
    approval_config,
)
from tests.running_app import RunningBot, running_bot

THREAD_TS = "1700000001.000100"
ANSWER_TS = "1700000002.000100"


def feedback_click(
    requests: SlackRequestBuilder,
    *,
    value: Any,
    user: str = ASKER,
    channel: str = CHANNEL,
    team_id: str | None = None,
    actions: Any = None,
) -> SignedRequest:
    """A click on 👍 or 👎 under an answer, shaped as Slack sends it (a `feedback_buttons`
    action in a block_actions payload)."""
    team = team_id or requests.team_id
    action = {
        "type": "feedback_buttons",
        "action_id": FEEDBACK_ACTION,
        "block_id": "feedback",
        "text": {"type": "plain_text", "text": "👍", "emoji": True},
        "value": value,
        "action_ts": f"{time.time():.6f}",
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": requests.api_app_id,
        "token": requests.verification_token,
        "container": {
            "type": "message",
            "message_ts": ANSWER_TS,
            "channel_id": channel,
            "is_ephemeral": False,
            "thread_ts": THREAD_TS,
        },
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}",
        "team": {"id": team, "domain": requests.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": {
            "type": "message",
            "user": requests.bot_user_id,
            "bot_id": requests.bot_id,
            "ts": ANSWER_TS,
            "thread_ts": THREAD_TS,
            "text": "The answer.",
            "blocks": [],
        },
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{team}/1/x",
        "actions": [action] if actions is None else actions,
    }
    return requests.raw(urlencode({"payload": json.dumps(payload)}).encode(), FORM)


async def answered(bot: RunningBot) -> str:
    """Ask in the channel and wait for the answer; its run id is what the buttons carry."""
    status, _ = await bot.send(
        bot.requests.mention(text="what is up?", user=ASKER, channel=CHANNEL, ts=THREAD_TS)
    )
    assert status == 200
    await bot.settle()
    async with bot.app.db.read() as session:
        [run_id] = (await session.scalars(select(col(Run.id)))).all()
    return run_id


def model(answers: int = 1) -> ScriptedModel:
    return ScriptedModel([[assistant_message("The answer.")] for _ in range(answers)])


def value_of(run_id: str, opinion: str) -> str:
    """The value of the button the bot sends, read from the block the answer carries."""
    buttons = feedback_block(run_id)["elements"][0]
    return str(buttons[f"{opinion}_button"]["value"])


async def click(bot: RunningBot, request: SignedRequest) -> int:
    status, _ = await bot.send(request)
    await bot.settle()
    return status


async def stored(bot: RunningBot) -> list[tuple[str, str, str, str, str | None, str]]:
    async with bot.app.db.read() as session:
        rows = await session.execute(
            select(
                col(Feedback.run_id),
                col(Feedback.team_id),
                col(Feedback.channel_id),
                col(Feedback.user_id),
                col(Feedback.message_ts),
                col(Feedback.value),
            ).order_by(col(Feedback.user_id))
        )
        return [(r, t, c, u, m, str(v)) for r, t, c, u, m, v in rows.all()]


def private_notes(slack: FakeSlackAPI, user: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.postEphemeral") if c.args["user"] == user]


async def test_a_click_is_acked_stored_and_thanked_privately_in_the_thread(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=model()) as bot:
        run_id = await answered(bot)

        status = await click(bot, feedback_click(bot.requests, value=value_of(run_id, "positive")))

        assert status == 200
        team = slack.team_id
        assert await stored(bot) == [(run_id, team, CHANNEL, ASKER, ANSWER_TS, "positive")]
        [note] = private_notes(slack, ASKER)
        assert note["text"] == THANKS
        assert note["channel"] == CHANNEL
        assert note["thread_ts"] == THREAD_TS


async def test_a_second_click_by_the_same_person_changes_their_opinion(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=model()) as bot:
        run_id = await answered(bot)

        await click(bot, feedback_click(bot.requests, value=value_of(run_id, "positive")))
        await click(bot, feedback_click(bot.requests, value=value_of(run_id, "negative")))
        await click(
            bot, feedback_click(bot.requests, user=APPROVER, value=value_of(run_id, "positive"))
        )

        opinions = [(user, value) for _, _, _, user, _, value in await stored(bot)]
        assert opinions == [(ASKER, "negative"), (APPROVER, "positive")]
        assert [n["text"] for n in private_notes(slack, ASKER)] == [THANKS, THANKS_AGAIN]


async def test_a_forged_value_is_refused_privately_and_nothing_is_stored(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=model()) as bot:
        run_id = await answered(bot)
        forged = [
            (value_of(new_run_id(), "positive"), CHANNEL, UNKNOWN_ANSWER),  # no such answer
            (value_of(run_id, "positive"), "C0OTHER", UNKNOWN_ANSWER),  # another channel's
            (f"positive:{run_id};drop", CHANNEL, INVALID_BUTTON),
            ("<!channel>", CHANNEL, INVALID_BUTTON),
            (12345, CHANNEL, INVALID_BUTTON),
        ]

        for value, channel, _ in forged:
            assert (
                await click(bot, feedback_click(bot.requests, value=value, channel=channel)) == 200
            )

        assert await stored(bot) == []
        assert [n["text"] for n in private_notes(slack, ASKER)] == [note for *_, note in forged]


async def test_a_malformed_click_is_a_400_and_stores_nothing(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=model()) as bot:
        run_id = await answered(bot)
        value = value_of(run_id, "positive")

        statuses = [
            await click(bot, feedback_click(bot.requests, value=value, user="U0 <bad>")),
            await click(bot, feedback_click(bot.requests, value=value, channel="C0 bad")),
        ]

        assert statuses == [400, 400]
        assert await stored(bot) == []
        assert not slack.calls_to("chat.postEphemeral")


async def command(bot: RunningBot, user: str, text: str = "feedback") -> str:
    status, body = await bot.send(
        bot.requests.slash_command(command="/threadgate", text=text, user=user)
    )
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def test_approvers_count_the_feedback_of_the_last_7_and_30_days(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model()
    ) as bot:
        assert "no feedback" in await command(bot, APPROVER)
        run_id = await answered(bot)
        for user, opinion in [("U1", "positive"), ("U2", "positive"), ("U3", "negative")]:
            request = feedback_click(bot.requests, user=user, value=value_of(run_id, opinion))
            await click(bot, request)
        async with bot.app.db.write() as session:
            await session.execute(
                update(Feedback)
                .where(col(Feedback.user_id) == "U2")
                .values(created_at=utcnow() - timedelta(days=10))
            )

        counts = await command(bot, APPROVER)

        assert "Last 7 days: 1 👍, 1 👎 (50% positive)" in counts
        assert "Last 30 days: 2 👍, 1 👎 (67% positive)" in counts
        assert await command(bot, GROUP_MEMBER) == counts  # an approver through a user group
        assert await command(bot, OUTSIDER) == FOR_APPROVERS
        assert await command(bot, ASKER) == FOR_APPROVERS
        assert "/threadgate feedback" in await command(bot, OUTSIDER, text="")

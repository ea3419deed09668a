"""What reaches POST /slack/events that is not a good request: refused, and nothing changes."""

import json
import time

import pytest
from agents.testing import ScriptedModel
from sqlalchemy import func, select

from storage.models import Job, SlackEvent
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import SignedRequest, SlackRequestBuilder
from tests.running_app import RunningBot, running_bot


async def _nothing_stored(bot: RunningBot) -> None:
    async with bot.app.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
        assert await session.scalar(select(func.count()).select_from(SlackEvent)) == 0


async def test_wrong_missing_and_stale_signatures_are_refused(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        good = bot.requests.mention(text="hi", ts="1.1")
        forged = SlackRequestBuilder("not-the-secret").mention(text="hi", ts="1.2")
        stale = bot.requests.mention(text="hi", ts="1.3", timestamp=int(time.time()) - 6 * 60)
        unsigned = SignedRequest(
            body=good.body,
            headers={k: v for k, v in good.headers.items() if not k.startswith("X-Slack")},
        )
        tampered = SignedRequest(body=good.body.replace(b"hi", b"rm -rf"), headers=good.headers)
        for request in (forged, stale, unsigned, tampered):
            status, _ = await bot.send(request)
            assert status == 401
        await bot.settle()
        await _nothing_stored(bot)
        assert not slack.calls_to("chat.postMessage")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"type": "event_callback", "event": "nope"}', "application/json"),
        (
            b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}',
            "application/json",
        ),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
        (b"payload=%5B%5D", "application/x-www-form-urlencoded"),
        (b"hello=world", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00", "application/json"),
        (
            b"payload="
            + json.dumps(
                {"type": "block_actions", "actions": [{"action_id": "threadgate_approve"}]}
            ).encode(),
            "application/x-www-form-urlencoded",
        ),
        (
            b"payload="
            + json.dumps(
                {"type": "view_submission", "view": {"callback_id": "threadgate_reject_reason"}}
            ).encode(),
            "application/x-www-form-urlencoded",
        ),
    ],
)
async def test_malformed_bodies_get_a_4xx_never_a_5xx(
    database_url: str, slack: FakeSlackAPI, body: bytes, content_type: str
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        status, text = await bot.send(bot.requests.raw(body, content_type))
        assert 400 <= status < 500, text
        await bot.settle()
        await _nothing_stored(bot)


async def test_url_verification_is_answered(database_url: str, slack: FakeSlackAPI) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
        status, text = await bot.send(bot.requests.raw(body.encode(), "application/json"))
        assert status == 200
        assert "abc123" in text


async def test_the_slash_command_answers_privately(database_url: str, slack: FakeSlackAPI) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        status, text = await bot.send(
            bot.requests.slash_command(
                command="/threadgate", text="", user="U0ALICE", channel="C0CHAN"
            )
        )
        assert status == 200
        answer = json.loads(text)
        assert answer["response_type"] == "ephemeral"
        assert "threadgate" in answer["text"]


async def test_healthz_reports_ready_only_after_start(
    database_url: str, slack: FakeSlackAPI
) -> None:
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        async with bot.http.get(bot.url + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["ok"] is True
        bot.app.health.slack_ok = False
        async with bot.http.get(bot.url + "/healthz") as response:
            assert response.status == 503
        status, _ = await bot.send(bot.requests.mention(text="hi", ts="1.9"))
        assert status == 503
        bot.app.health.slack_ok = True

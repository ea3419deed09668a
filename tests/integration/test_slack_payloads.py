"""Everything Slack really sends gets the answer Slack expects.

The bodies are real ones, from the test fixtures of Slack's own SDKs, kept next to the
repository in ../shared/real_payloads (see its README); each is signed here as Slack would sign
it and sent to the running bot.
"""

import json
import logging
import os
import uuid
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message
from sqlmodel import func, select

from storage.models import Job, Run
from tests.bot_process import ROOT
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_requests import FORM, JSON, SignedRequest, SlackRequestBuilder
from tests.running_app import RunningBot, running_bot

REAL_PAYLOADS = ROOT.parent / "shared" / "real_payloads"

# Reviewed by hand: a person writing to the bot, in full (a mention or a direct message with the
# fields Slack always sends). Several are the same message (the same workspace, channel and ts):
# each message must start one run, whichever of its copies comes first. None of the fixtures is
# a reply in a thread the bot takes part in.
PEOPLE_WRITING_TO_THE_BOT = {
    "event-app_mention__bolt-app-L334",
    "event-app_mention__bolt-asgi_http-L111",
    "event-app_mention__bolt-block_actions_respond-L69",
    "event-app_mention__bolt-events_request_verification-L83",
    "event-app_mention__bolt-events_say_stream-L196",
    "event-app_mention__bolt-events_shared_channels-L60",
    "event-app_mention__sdk-mock_socket_mode_server-L15",
    "event-message-file_share__bolt-attaching_conversation_kwargs-L49",
    "event-message-file_share__bolt-payload_utils-L32",
    "event-message__bolt-attaching_conversation_kwargs-L21",
    "event-message__bolt-events_assistant-L303",
    "event-message__bolt-events_assistant-L322",
    "event-message__bolt-events_assistant-L341",
}


def _real_payloads() -> list[dict[str, Any]]:
    if not REAL_PAYLOADS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REAL_PAYLOADS} is missing and CI=true")
        pytest.skip(f"{REAL_PAYLOADS} is missing: clone shared/ next to the repository")
    files = sorted(REAL_PAYLOADS.glob("*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def _signed(requests: SlackRequestBuilder, payload: dict[str, Any]) -> SignedRequest:
    """The body as Slack sent it, except that each event gets an id of its own.

    The fixtures reuse "Ev111" across unrelated events; Slack never does, and with one id the
    bot would rightly take all but the first for retries.
    """
    if payload["kind"] == "form":
        return requests.raw(payload["body"].encode(), FORM)
    body = dict(payload["body"])
    if "event_id" in body:
        body["event_id"] = "Ev" + uuid.uuid4().hex[:12].upper()
    return requests.raw(json.dumps(body).encode(), JSON)


def _subscribed(body: Any) -> bool:
    """An event the manifest subscribes to, whole: Slack retries it unless it gets a 200."""
    if not isinstance(body, dict) or body.get("type") != "event_callback" or "event_id" not in body:
        return False
    event = body["event"]
    if event.get("type") in ("assistant_thread_started", "assistant_thread_context_changed"):
        return "assistant_thread" in event
    return event.get("type") in ("app_mention", "message", "app_home_opened") and "channel" in event


def _message(payload: dict[str, Any]) -> tuple[str, str, str]:
    body = payload["body"]
    event = body["event"]
    return body.get("team_id") or event["team"], event["channel"], event["ts"]


async def _jobs(bot: RunningBot) -> int:
    async with bot.app.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Job))
    return count or 0


async def test_every_real_request_gets_a_2xx_or_4xx_and_only_people_writing_to_the_bot_start_runs(
    database_url: str, slack: FakeSlackAPI
) -> None:
    # People's messages go last, so that none of them can hide, as a repeat of the same
    # message, another request that wrongly started a run before it.
    payloads = sorted(_real_payloads(), key=lambda p: p["name"] in PEOPLE_WRITING_TO_THE_BOT)
    model = ScriptedModel([[assistant_message("ok")] for _ in range(len(payloads))])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        wrong = []
        started = set()
        for payload in payloads:
            before = await _jobs(bot)
            status, text = await bot.send(_signed(bot.requests, payload))
            if not (200 <= status < 300 or 400 <= status < 500):
                wrong.append(f"{payload['name']}: {status} {text[:200]}")
            elif _subscribed(payload["body"]) and status != 200:
                wrong.append(f"{payload['name']}: {status} {text[:200]} for a subscribed event")
            if await _jobs(bot) > before:
                started.add(payload["name"])
        await bot.settle()
        assert not wrong, "\n".join(wrong)
        assert started <= PEOPLE_WRITING_TO_THE_BOT
        messages = {_message(p) for p in payloads if p["name"] in PEOPLE_WRITING_TO_THE_BOT}
        assert {_message(p) for p in payloads if p["name"] in started} == messages
        assert len(started) == len(messages)
        async with bot.app.db.read() as session:
            runs = await session.scalar(select(func.count()).select_from(Run))
        assert runs == len(messages)


async def test_ssl_check_is_answered_200(database_url: str, slack: FakeSlackAPI) -> None:
    [ssl_check] = [p for p in _real_payloads() if p["label"] == "ssl_check"]
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        status, _ = await bot.send(_signed(bot.requests, ssl_check))
        assert status == 200
        status, _ = await bot.send(bot.requests.raw(b"token=x&ssl_check=1", FORM))
        assert status == 200


async def test_requests_no_listener_takes_get_a_quiet_404(
    database_url: str, slack: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    unhandled = [
        p
        for p in _real_payloads()
        if p["label"]
        in ("event:reaction_added", "interaction:shortcut", "interaction:block_suggestion")
    ]
    assert unhandled
    async with running_bot(database_url=database_url, slack=slack, model=ScriptedModel([])) as bot:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for payload in unhandled:
                status, _ = await bot.send(_signed(bot.requests, payload))
                assert status == 404, payload["name"]
            status, _ = await bot.send(bot.requests.slash_command(command="/not-ours"))
            assert status == 404
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("name", "reads_thread"),
    [
        # A thread's first message, its event listing no files: nothing to read from Slack.
        ("event-app_mention__bolt-app-L334", False),
        ("event-message__bolt-attaching_conversation_kwargs-L21", False),
        # A first message of subtype file_share whose event lists no file: read all the same.
        ("event-message-file_share__bolt-attaching_conversation_kwargs-L49", True),
        # A reply in a thread, with a file.
        ("event-message-file_share__bolt-payload_utils-L32", True),
        # A reply in a thread without files: the earlier messages are read, as always.
        ("event-message__bolt-events_assistant-L303", True),
    ],
)
async def test_a_thread_is_read_from_slack_unless_the_event_starts_it_without_files(
    database_url: str, slack: FakeSlackAPI, name: str, reads_thread: bool
) -> None:
    [payload] = [p for p in _real_payloads() if p["name"] == name]
    model = ScriptedModel([[assistant_message("ok")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        status, _ = await bot.send(_signed(bot.requests, payload))
        assert status == 200
        await bot.settle()
        assert model.last_call is not None  # answered either way
        assert bool(slack.calls_to("conversations.replies")) == reads_thread

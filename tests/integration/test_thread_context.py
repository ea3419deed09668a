"""A mention in the middle of a human thread: the agent reads what people wrote before it, and
the files they attached, through the real HTTP path against the fake Slack."""

import base64
import json
from typing import Any

import pytest
from agents.testing import ModelCall, ScriptedModel, assistant_message
from sqlalchemy import delete
from sqlmodel import col, select

from bot.config import AgentConfig, Config
from bot.slack.client import build_slack_client
from bot.slack.thread_files import FileLimits, FileReader
from storage.ids import ThreadRef
from storage.messages import Accepted, IncomingRow, accept_messages
from storage.models import Job, Run
from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import ASKER, CHANNEL, OUTSIDER, texts
from tests.running_app import RunningBot, running_bot

THREAD = "1700000100.000100"
BOB = "U0BOB"
CAROL = "U0CAROL"


def answers(*texts: str) -> ScriptedModel:
    return ScriptedModel([[assistant_message(text)] for text in texts])


def config(**agent: Any) -> Config:
    return Config(agent=AgentConfig(**agent))


def human_thread(slack: FakeSlackAPI) -> None:
    """A thread people wrote in before anyone asked the bot, with another app's post in it."""
    slack.seed_thread(
        CHANNEL,
        THREAD,
        [
            {"user": BOB, "text": "order A-77 arrived broken", "ts": THREAD},
            {"user": CAROL, "text": "the order id is A-77, refund it?", "ts": "1700000101.000100"},
            {  # as apps post today: a bot user, a bot_id, no subtype
                "user": "U0OTHERAPP",
                "bot_id": "B0OTHER",
                "app_id": "A0OTHER",
                "text": "ticket opened by another app",
                "ts": "1700000102.000100",
            },
            {"user": BOB, "text": "", "subtype": "channel_join", "ts": "1700000103.000100"},
        ],
    )


async def mention(
    bot: RunningBot,
    text: str,
    ts: str,
    *,
    user: str = ASKER,
    files: list[dict[str, Any]] | None = None,
) -> None:
    """As Slack does: the message is in the thread by the time its event arrives, and the
    event lists the files the message carries."""
    message: dict[str, Any] = {"user": user, "text": f"<@UBOT> {text}", "ts": ts}
    if files is not None:
        message["files"] = files
        message["subtype"] = "file_share"
    bot.slack.seed_thread(CHANNEL, THREAD, [message])
    status, _ = await bot.send(
        bot.requests.mention(
            text=text, user=user, channel=CHANNEL, ts=ts, thread_ts=THREAD, files=files
        )
    )
    assert status == 200
    await bot.settle()


def context_parts(call: ModelCall | None) -> list[dict[str, Any]]:
    """The content parts of the structured user items: what the thread reader added."""
    assert call is not None
    return [
        part
        for item in call.input
        if isinstance(item, dict) and item.get("role") == "user"
        if isinstance(item.get("content"), list)
        for part in item["content"]
    ]


def context_texts(call: ModelCall | None) -> list[str]:
    return [str(p["text"]) for p in context_parts(call) if p.get("type") == "input_text"]


async def test_a_mention_mid_thread_reads_what_people_wrote_before_it(
    database_url: str, slack: FakeSlackAPI
) -> None:
    human_thread(slack)
    model = answers("The order id is A-77.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "what is the order id above?", "1700000104.000100")

        assert context_texts(model.last_call) == [
            f"Earlier in this thread, <@{BOB}> wrote:\norder A-77 arrived broken",
            f"Earlier in this thread, <@{CAROL}> wrote:\nthe order id is A-77, refund it?",
        ]
        last = model.last_call
        assert last is not None
        assert last.input[-1] == {"role": "user", "content": "what is the order id above?"}
        assert "another app" not in json.dumps(last.input)
        [answer] = slack.messages_in_thread(CHANNEL, THREAD)
        assert answer.args["text"] == "The order id is A-77."
        [run] = await _runs(bot)
        assert run.requesters == [ASKER, BOB, CAROL]


def replies_read(slack: FakeSlackAPI, channel: str, thread_ts: str) -> int:
    """How often the bot read the thread from Slack."""
    return sum(
        1
        for c in slack.calls_to("conversations.replies")
        if c.args.get("channel") == channel and c.args.get("ts") == thread_ts
    )


@pytest.mark.parametrize("where", ["channel", "dm"])
async def test_a_thread_started_without_files_is_answered_without_reading_it_from_slack(
    database_url: str, slack: FakeSlackAPI, where: str
) -> None:
    """Nothing came before a thread's first message, and its event says it carries no files:
    Slack has nothing to give its run. A later message of the thread still reads what people
    wrote in between."""
    channel = CHANNEL if where == "channel" else "D0DM"
    model = answers("Hello.", "A-77, then.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        slack.seed_thread(channel, THREAD, [{"user": ASKER, "text": "hello", "ts": THREAD}])
        send = bot.requests.mention if where == "channel" else bot.requests.dm
        # A top-level message: no thread_ts, as Slack sends it.
        assert (await bot.send(send(text="hello", channel=channel, ts=THREAD)))[0] == 200
        await bot.settle()

        assert replies_read(slack, channel, THREAD) == 0
        assert texts(slack.messages_in_thread(channel, THREAD)) == ["Hello."]
        assert context_texts(model.last_call) == []

        slack.seed_thread(
            channel,
            THREAD,
            [
                {"user": BOB, "text": "it is order A-77", "ts": "1800000000.000100"},
                {"user": ASKER, "text": "which order?", "ts": "1800000001.000100"},
            ],
        )
        reply = send(text="which order?", channel=channel, ts="1800000001.000100", thread_ts=THREAD)
        assert (await bot.send(reply))[0] == 200
        await bot.settle()

        assert replies_read(slack, channel, THREAD) == 1
        assert context_texts(model.last_call) == [
            f"Earlier in this thread, <@{BOB}> wrote:\nit is order A-77"
        ]
        assert texts(slack.messages_in_thread(channel, THREAD))[-1] == "A-77, then."
        runs = await _runs(bot)
        assert runs[-1].requesters == [ASKER, BOB]


async def test_a_direct_message_that_starts_a_thread_with_a_file_reads_the_file(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """A `message` event of subtype `file_share`: the thread is read for the message's files."""
    notes = slack.add_file("notes.txt", "text/plain", b"order A-91: customer wants a refund\n")
    model = answers("A-91.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        slack.seed_thread(
            "D0DM",
            THREAD,
            [{"user": ASKER, "text": "which order?", "ts": THREAD, "files": [notes]}],
        )
        request = bot.requests.dm(text="which order?", channel="D0DM", ts=THREAD, files=[notes])
        assert (await bot.send(request))[0] == 200
        await bot.settle()

        assert replies_read(slack, "D0DM", THREAD) == 1
        [header, body] = context_texts(model.last_call)
        assert header == f"<@{ASKER}> attached to the message below:"
        assert "order A-91: customer wants a refund" in body
        assert texts(slack.messages_in_thread("D0DM", THREAD)) == ["A-91."]


async def test_a_first_message_queued_before_files_were_recorded_still_reads_its_files(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """A job stored by a version that did not record whether its event carried files (the
    column is NULL) is read as it was then: unknown is never taken for "no files"."""
    notes = slack.add_file("notes.txt", "text/plain", b"order A-91: customer wants a refund\n")
    slack.seed_thread(
        CHANNEL,
        THREAD,
        [{"user": ASKER, "text": "<@UBOT> which order?", "ts": THREAD, "files": [notes]}],
    )
    model = answers("A-91.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        thread = ThreadRef(slack.team_id, CHANNEL, THREAD)
        row = IncomingRow("Ev0OLDJOB", thread, ASKER, THREAD, "which order?", False)
        assert row.has_files is None
        assert await accept_messages(bot.app.db, [row]) == [Accepted.QUEUED]
        bot.app.queue.kick(thread.key)
        await bot.settle()

        assert replies_read(slack, CHANNEL, THREAD) == 1
        assert "order A-91: customer wants a refund" in context_texts(model.last_call)[-1]
        assert texts(slack.messages_in_thread(CHANNEL, THREAD)) == ["A-91."]


async def test_only_the_newest_history_limit_messages_are_read(
    database_url: str, slack: FakeSlackAPI
) -> None:
    human_thread(slack)
    model = answers("Noted.")
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=config(history_limit=1)
    ) as bot:
        await mention(bot, "what is the order id above?", "1700000104.000100")

        assert context_texts(model.last_call) == [
            f"Earlier in this thread, <@{CAROL}> wrote:\nthe order id is A-77, refund it?"
        ]
        [run] = await _runs(bot)
        assert run.requesters == [ASKER, CAROL]


@pytest.mark.parametrize("lost", ["nothing", "bot_posts", "done_jobs"])
async def test_a_later_mention_reads_only_what_was_written_since_the_bot_last_took_part(
    database_url: str, slack: FakeSlackAPI, lost: str
) -> None:
    """What the first run read is in the thread's history now: it reaches the model once.

    Either end of the bot's record is enough to know that: its newest post in the thread (the
    job that took the message may be purged by retention since) or the newest message it took
    (its posts may be deleted from the thread).
    """
    human_thread(slack)
    model = answers("The order id is A-77.", "Refund it, then.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "what is the order id above?", "1700000104.000100")
        [answer] = slack.messages_in_thread(CHANNEL, THREAD)
        # Written after the answer without reaching the bot (in a thread it had forgotten,
        # say): the next run reads it, and only it.
        slack.seed_thread(
            CHANNEL,
            THREAD,
            [{"user": OUTSIDER, "text": "it was A-78 in fact", "ts": "1800000000.000100"}],
        )
        if lost == "bot_posts":
            slack.posted[CHANNEL].clear()
        if lost == "done_jobs":
            async with bot.app.db.write() as session:
                await session.execute(delete(Job))
        await mention(bot, "so what now?", "1800000001.000100", user=CAROL)

        second = model.last_call
        assert second is not None
        seen = json.dumps(second.input)
        assert seen.count("order A-77 arrived broken") == 1
        assert seen.count("the order id is A-77") == 1
        assert seen.count("what is the order id above?") == 1
        assert answer.args["text"] in seen
        assert context_texts(second)[-1] == (
            f"Earlier in this thread, <@{OUTSIDER}> wrote:\nit was A-78 in fact"
        )
        runs = await _runs(bot)
        assert runs[-1].requesters == [CAROL, ASKER, BOB, OUTSIDER]


async def test_a_text_file_attached_to_the_mention_is_read(
    database_url: str, slack: FakeSlackAPI
) -> None:
    notes = slack.add_file("notes.txt", "text/plain", b"order A-91: customer wants a refund\n")
    model = answers("A-91.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "which order is in the file?", THREAD, files=[notes])

        [header, body] = context_texts(model.last_call)
        assert header == f"<@{ASKER}> attached to the message below:"
        assert body.startswith(f'<@{ASKER}> attached the file "notes.txt" (text/plain):\n')
        assert "order A-91: customer wants a refund" in body
        [download] = slack.downloads()
        assert download.token == slack.bot_token
        assert download.args == {"file": notes["id"]}


async def test_a_file_earlier_in_the_thread_is_read_with_its_message(
    database_url: str, slack: FakeSlackAPI
) -> None:
    log = slack.add_file("app.log", "text/plain", b"ERROR order A-12 timed out")
    slack.seed_thread(
        CHANNEL,
        THREAD,
        [{"user": BOB, "text": "see the log", "ts": THREAD, "files": [log]}],
    )
    model = answers("A-12 timed out.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "what failed?", "1700000101.000100")

        [said, file_text] = context_texts(model.last_call)
        assert said == f"Earlier in this thread, <@{BOB}> wrote:\nsee the log"
        assert "ERROR order A-12 timed out" in file_text
        [run] = await _runs(bot)
        assert run.requesters == [ASKER, BOB]


async def test_a_file_larger_than_the_limit_is_a_note_and_is_not_downloaded(
    database_url: str, slack: FakeSlackAPI
) -> None:
    big = slack.add_file("dump.csv", "text/csv", b"x" * 2_500)
    model = answers("Too big.")
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=config(max_file_bytes=1_000)
    ) as bot:
        await mention(bot, "read the file", THREAD, files=[big])

        assert context_texts(model.last_call)[-1] == (
            f'File "dump.csv" from <@{ASKER}> not read: 3 kB, larger than the limit of 1 kB.'
        )
        assert not slack.downloads()
        assert slack.messages_in_thread(CHANNEL, THREAD)[-1].args["text"] == "Too big."


async def test_a_file_whose_size_slack_understates_is_cut_off_while_reading(
    database_url: str, slack: FakeSlackAPI
) -> None:
    lying = slack.add_file("dump.txt", "text/plain", b"y" * 50_000, size=10)
    model = answers("Too big.")
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=config(max_file_bytes=1_000)
    ) as bot:
        await mention(bot, "read the file", THREAD, files=[lying])

        [download] = slack.downloads()
        assert download.args == {"file": lying["id"]}
        assert context_texts(model.last_call)[-1] == (
            f'File "dump.txt" from <@{ASKER}> not read: larger than the limit of 1 kB.'
        )
        assert "yyyy" not in json.dumps(context_parts(model.last_call))


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_an_image_reaches_a_model_that_takes_images_as_image_input(
    database_url: str, slack: FakeSlackAPI
) -> None:
    shot = slack.add_file("screenshot.png", "image/png", PNG)
    model = answers("A red dot.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "what is in the picture?", THREAD, files=[shot])

        [image] = [p for p in context_parts(model.last_call) if p["type"] == "input_image"]
        assert image["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
        assert context_texts(model.last_call)[-1] == (
            f'<@{ASKER}> attached the image "screenshot.png":'
        )


async def test_an_image_is_a_note_for_a_model_that_takes_no_images(
    database_url: str, slack: FakeSlackAPI
) -> None:
    shot = slack.add_file("screenshot.png", "image/png", PNG)
    model = answers("I cannot see it.")
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=config(accepts_images=False)
    ) as bot:
        await mention(bot, "what is in the picture?", THREAD, files=[shot])

        assert not [p for p in context_parts(model.last_call) if p["type"] == "input_image"]
        assert context_texts(model.last_call)[-1] == (
            f'Image "screenshot.png" from <@{ASKER}> not shown to the model: '
            "it does not take images."
        )
        assert not slack.downloads()


async def test_a_file_stored_on_a_foreign_host_is_not_fetched(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """The fake itself answers on `localhost` too: a fetch would show up, with the token."""
    elsewhere = f"http://localhost:{slack.port}/files-pri/T0TEAM-F1/download/secrets.txt"
    planted = slack.add_file("secrets.txt", "text/plain", b"nothing", url=elsewhere)
    model = answers("Not read.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "read this", THREAD, files=[planted])

        assert context_texts(model.last_call)[-1] == (
            f'File "secrets.txt" from <@{ASKER}> not read: it is not stored on Slack.'
        )
        assert not slack.downloads()


async def test_a_file_that_is_gone_or_refused_is_a_note_and_the_run_goes_on(
    database_url: str, slack: FakeSlackAPI
) -> None:
    gone = slack.add_file("gone.txt", "text/plain", b"old")
    refused = slack.add_file("refused.txt", "text/plain", b"secret")
    del slack.files[gone["id"]]
    slack.fail("files.download", status=403)
    model = answers("Could not read them.")
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await mention(bot, "read these", THREAD, files=[gone, refused])

        assert context_texts(model.last_call)[1:] == [
            f'File "gone.txt" from <@{ASKER}> not read: Slack refused it (file_not_found).',
            f'File "refused.txt" from <@{ASKER}> not read: Slack refused it (HTTP 403).',
        ]
        assert slack.messages_in_thread(CHANNEL, THREAD)[-1].args["text"] == (
            "Could not read them."
        )


async def _runs(bot: RunningBot) -> list[Run]:
    async with bot.app.db.read() as session:
        return list((await session.scalars(select(Run).order_by(col(Run.created_at)))).all())


async def test_a_download_that_never_answers_is_a_note_after_the_timeout(
    slack: FakeSlackAPI,
) -> None:
    file = slack.add_file("slow.txt", "text/plain", b"late")
    slack.hang("files.download", accept=False)
    client = build_slack_client(slack.bot_token, base_url=slack.base_url, backoff_factor=0.01)
    limits = FileLimits(max_file_bytes=100, max_image_bytes=100, accepts_images=True, timeout=0.3)

    parts = await FileReader(client, limits).parts(file, author=ASKER)

    assert parts == [
        {
            "type": "input_text",
            "text": f'File "slow.txt" from <@{ASKER}> not read: Slack was too slow.',
        }
    ]
    assert len(slack.faults) == 1

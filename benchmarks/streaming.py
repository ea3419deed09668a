"""Scenarios 7 and 8: how soon a streaming bot shows a thread something, and how soon after the
model wrote it the first text reaches the thread.

Both drive the bot with `[agent] stream = true`, served in this process like scenarios 1, 2, 4
and 5, in rounds of N mentions sent at once; a round starts once every thread of the last one
has its answer. Times are read off the fakes' records once a round is over, not when a waiter
wakes up: the fake Slack stamps each call as it arrives (`RecordedCall.at`), the fake model each
streamed delta as it leaves (`Timing.deltas`), both with `time.monotonic()`, and the sender
stamps each mention with that clock just before sending it. The fakes and the sender run in
this process, so every reading comes from one clock.
"""

import asyncio
import json
import time
from collections.abc import Callable, Collection

from benchmarks.harness import (
    ASKER,
    CHANNEL,
    FEW_WORDS_REQUEST,
    BenchmarkError,
    Endpoint,
    Fakes,
    in_threads,
    new_thread_ts,
)
from benchmarks.results import Measurement
from benchmarks.scenarios import Plan, senders_case, settle
from tests.fakes.slack_api import RecordedCall

STATUS = "assistant.threads.setStatus"
STREAM_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})
# Scenario 8's model: its first token takes this long, the few after it come this far apart.
FIRST_TOKEN_DELAY = 0.3
TOKEN_DELAY = 0.02


def streamed_text(call: RecordedCall) -> str:
    """The Markdown a chat.*Stream call adds: its markdown_text, or its markdown_text chunks
    (a call may carry only task updates, which show no answer text)."""
    text = call.args.get("markdown_text")
    if isinstance(text, str):
        return text
    chunks = call.args.get("chunks")
    if isinstance(chunks, str):
        try:
            chunks = json.loads(chunks)
        except json.JSONDecodeError:
            return ""
    if not isinstance(chunks, list):
        return ""
    return "".join(
        str(chunk.get("text", ""))
        for chunk in chunks
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text"
    )


def _earliest(found: dict[str, float], thread: str, at: float) -> None:
    if at < found.get(thread, float("inf")):
        found[thread] = at


def first_text_at(fakes: Fakes, threads: Collection[str]) -> dict[str, float]:
    """When each thread's first streamed text reached the fake Slack."""
    # An append or a stop names the stream's message, not its thread.
    thread_of = {(s.channel, s.ts): s.thread_ts for s in fakes.slack.streams}
    found: dict[str, float] = {}
    for call in fakes.slack.calls:
        if call.method not in STREAM_METHODS or not streamed_text(call):
            continue
        if call.method == "chat.startStream":
            thread = str(call.args.get("thread_ts"))
        else:
            thread = thread_of.get((str(call.args.get("channel")), str(call.args.get("ts"))), "")
        if thread in threads:
            _earliest(found, thread, call.at)
    return found


def first_sign_at(fakes: Fakes, threads: Collection[str]) -> dict[str, float]:
    """When each thread first showed something: a status, streamed text, the :eyes:
    reaction that stands in for the status where Slack refuses one, or a message (the whole
    answer, for an app that neither streams nor sets a status)."""
    found = first_text_at(fakes, threads)
    for call in fakes.slack.calls:
        shown = call.method == STATUS and bool(call.args.get("status"))
        if shown or call.method == "chat.postMessage":
            thread = str(call.args.get("thread_ts"))
        elif call.method == "reactions.add":
            thread = str(call.args.get("timestamp"))  # the mention, which opens its thread
        else:
            continue
        if thread in threads:
            _earliest(found, thread, call.at)
    return found


def model_first_token_at(fakes: Fakes, marks: dict[str, str]) -> dict[str, float]:
    """When the model sent each thread's first delta; `marks` is the text that only that
    thread's mention carries, which is how a model request tells its thread."""
    found: dict[str, float] = {}
    for body, timing in zip(fakes.model.requests, fakes.model.timings, strict=True):
        given = json.dumps(body.get("input"))
        first = timing.first_token_at
        for thread, mark in marks.items():
            if mark in given and first is not None:
                _earliest(found, thread, first)
    return found


def _cleared_in(threads: Collection[str]) -> Callable[[RecordedCall], bool]:
    """The worker clears a thread's status last, once the answer is out."""
    return lambda call: call.args.get("status") == "" and str(call.args.get("thread_ts")) in threads


async def _round(
    endpoint: Endpoint, fakes: Fakes, senders: int, text: Callable[[str], str]
) -> dict[str, float]:
    """Every sender sends one mention at once; returns when each one was sent, by thread, once
    every thread is answered and the bot is idle. The fakes still hold the round's records."""
    requests = {
        ts: endpoint.requests.mention(text=text(ts), user=ASKER, channel=CHANNEL, ts=ts)
        for ts in (new_thread_ts() for _ in range(senders))
    }
    sent_at: dict[str, float] = {}

    async def send(ts: str) -> None:
        sent_at[ts] = time.monotonic()
        await endpoint.post(requests[ts])

    await asyncio.gather(*(send(ts) for ts in requests))
    if endpoint.name.startswith("bot"):
        await fakes.wait_call(STATUS, _cleared_in(set(requests)), count=senders, within=600)
    else:  # the in-memory bot sets no status: its answer is the end
        await fakes.wait_post(in_threads(set(requests)), count=senders, within=600)
    await endpoint.idle()
    return sent_at


def _since(
    starts: dict[str, float], ends: dict[str, float], threads: Collection[str], what: str
) -> tuple[float, ...]:
    """Milliseconds from start to end in each thread; `what` names what a thread may lack."""
    missing = [ts for ts in threads if ts not in starts or ts not in ends]
    if missing:
        raise BenchmarkError(f"thread {missing[0]}: no {what}")
    return tuple((ends[ts] - starts[ts]) * 1000 for ts in threads)


async def scenario_first_sign(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    """Mention sent → first visible sign in its thread, with the model answering at once."""
    await _round(endpoint, fakes, max(s for s, _ in plan.first_sign), lambda _ts: "hello")
    await settle(endpoint, fakes)  # warm-up
    found = []
    for senders, rounds in plan.first_sign:
        samples: tuple[float, ...] = ()
        for _ in range(rounds):
            sent_at = await _round(endpoint, fakes, senders, lambda _ts: "hello")
            signs = first_sign_at(fakes, sent_at)
            samples += _since(sent_at, signs, sent_at, "visible sign")
            fakes.forget()
        case = senders_case(senders)
        found.append(Measurement(7, case, db, endpoint.name, samples, x=senders))
    return found


async def scenario_first_token(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    """Model's first delta sent → first streamed text in the thread, with a model whose first
    token takes FIRST_TOKEN_DELAY and a few more after it."""

    def text(ts: str) -> str:
        return f"{FEW_WORDS_REQUEST} (thread {ts})"

    found = []
    with fakes.paced_model(first_token_delay=FIRST_TOKEN_DELAY, token_delay=TOKEN_DELAY):
        await _round(endpoint, fakes, 1, text)  # warm-up; a round takes the model's time
        await settle(endpoint, fakes)
        for senders, rounds in plan.first_token:
            samples: tuple[float, ...] = ()
            for _ in range(rounds):
                sent_at = await _round(endpoint, fakes, senders, text)
                model = model_first_token_at(fakes, {ts: text(ts) for ts in sent_at})
                shown = first_text_at(fakes, sent_at)
                samples += _since(model, shown, sent_at, "model delta or streamed text")
                fakes.forget()
            case = senders_case(senders)
            found.append(Measurement(8, case, db, endpoint.name, samples, x=senders))
    return found

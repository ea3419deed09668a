"""Scenarios 1 to 5: each sample is one signed request over HTTP, timed until the fake Slack
receives the answer's chat.postMessage in that thread (or, for acks, until the HTTP response).
Scenarios 7 and 8, which time what a streaming bot shows first, are in benchmarks/streaming.py.

Between samples the app is let go idle and the fakes forget what they recorded, so samples do
not queue behind each other's leftovers.
"""

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from benchmarks.databases import DbKind
from benchmarks.harness import (
    APPROVER,
    ASKER,
    CHANNEL,
    DELETE_REQUEST,
    FINAL_ANSWER,
    BenchmarkError,
    Endpoint,
    Fakes,
    in_thread,
    in_threads,
    new_thread_ts,
)
from benchmarks.process import AppName
from benchmarks.results import Measurement
from benchmarks.seeding import add_history, add_pending_approvals
from bot.slack.blocks import APPROVE_ACTION
from tests.fakes.slack_api import RecordedCall
from tests.fakes.slack_requests import SignedRequest

Window = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True)
class Plan:
    warmup: int
    mentions: int  # scenario 1, per app and database
    clicks: int  # scenario 2, per app and database
    acks: tuple[tuple[int, int], ...]  # scenario 3: (concurrent senders, rounds)
    pending: tuple[int, ...]  # scenario 4: pending approvals in the database
    history: tuple[int, ...]  # scenario 5: earlier messages in the thread
    growth_clicks: int  # scenario 4 and 5, per size
    memory_threads: int  # scenario 6
    first_sign: tuple[tuple[int, int], ...]  # scenario 7: (concurrent senders, rounds)
    first_token: tuple[tuple[int, int], ...]  # scenario 8: (concurrent senders, rounds)
    together: tuple[int, int]  # scenarios 1 and 2 again: (concurrent senders, rounds)
    rates: tuple[int, ...]  # scenario 11: mentions per second
    rate_seconds: float  # scenario 11: how long each rate is held
    slow_mentions: int  # scenario 12, with a model whose first token takes SLOW_MODEL
    slow_clicks: int  # scenario 13, likewise
    memory_apps: tuple[AppName, ...] = ("baseline", "baseline-sdk", "memory-sdk", "bot")
    acks_apart: bool = True  # scenario 3 reaches the app in its own process
    streaming_dbs: tuple[DbKind, ...] = ("sqlite", "postgres")  # scenarios 7 and 8


FULL = Plan(
    warmup=10,
    mentions=200,
    clicks=100,
    acks=((1, 50), (10, 10), (50, 4)),
    pending=(10, 1_000, 10_000),
    history=(1, 100, 500),
    growth_clicks=60,
    memory_threads=1_000,
    first_sign=((1, 50), (10, 20)),
    first_token=((1, 50), (10, 20)),
    together=(10, 10),
    rates=(10, 50, 100),
    rate_seconds=30.0,
    slow_mentions=40,
    slow_clicks=30,
)
QUICK = Plan(
    warmup=2,
    mentions=5,
    clicks=4,
    acks=((1, 2), (3, 1), (5, 1)),
    pending=(10, 30, 100),
    history=(1, 10, 50),
    growth_clicks=3,
    memory_threads=10,
    first_sign=((1, 2), (10, 1)),
    first_token=((10, 1),),
    together=(10, 1),
    rates=(10, 50),
    rate_seconds=1.0,
    slow_mentions=2,
    slow_clicks=2,
    memory_apps=("baseline", "bot"),
    acks_apart=False,  # child processes take seconds to import the bot: CI skips that here
    # A streaming bot on a fresh database takes seconds to start: CI starts one, not two.
    streaming_dbs=("sqlite",),
)


def approval_id_of(call: RecordedCall) -> str:
    for block in call.args.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == APPROVE_ACTION:
                return str(element["value"])
    raise BenchmarkError(f"expected an approval request, got {call.args.get('text')!r}")


async def settle(endpoint: Endpoint, fakes: Fakes) -> None:
    """Between samples: nothing left running, nothing left to scan."""
    await endpoint.idle()
    fakes.forget()


async def mention_once(endpoint: Endpoint, fakes: Fakes, window: Window = nullcontext) -> float:
    thread_ts = new_thread_ts()
    request = endpoint.requests.mention(text="hello", user=ASKER, channel=CHANNEL, ts=thread_ts)
    with window():
        start = time.perf_counter()
        await endpoint.post(request)
        await fakes.wait_post(in_thread(thread_ts))
        elapsed = time.perf_counter() - start
    await settle(endpoint, fakes)
    return elapsed


async def pause(endpoint: Endpoint, fakes: Fakes, thread_ts: str) -> str:
    """A mention whose model reply is a call needing approval; returns the approval id."""
    request = endpoint.requests.mention(
        text=DELETE_REQUEST, user=ASKER, channel=CHANNEL, ts=thread_ts
    )
    await endpoint.post(request)
    calls = await fakes.wait_post(in_thread(thread_ts))
    await settle(endpoint, fakes)
    return approval_id_of(calls[0])


def decided_card(call: RecordedCall) -> bool:
    """The card's update that shows the decision (its fallback text is "<tool>: approved")."""
    return str(call.args.get("text", "")).endswith(": approved")


async def click_once(
    endpoint: Endpoint, fakes: Fakes, thread_ts: str, approval_id: str, window: Window = nullcontext
) -> tuple[float, float | None]:
    """Seconds from the click to the answer, and to the card showing the decision (None for
    the least-work baseline, which has no card)."""
    request = endpoint.requests.block_actions(
        user=APPROVER,
        action_id=APPROVE_ACTION,
        value=approval_id,
        channel=CHANNEL,
        message_ts=thread_ts,
        thread_ts=thread_ts,
        response_url=fakes.slack.response_url("click"),
    )
    answer = FINAL_ANSWER if endpoint.approvals else None
    with window():
        sent = time.monotonic()
        start = time.perf_counter()
        await endpoint.post(request)
        await fakes.wait_post(in_thread(thread_ts, answer))
        elapsed = time.perf_counter() - start
    shown: float | None = None
    if endpoint.approvals:
        cards = await fakes.wait_call("chat.update", decided_card)
        shown = min(c.at for c in cards) - sent
    await settle(endpoint, fakes)
    return elapsed, shown


async def approval_round_trip(
    endpoint: Endpoint, fakes: Fakes, window: Window = nullcontext
) -> tuple[float, float | None]:
    """Bot: pause first (not timed), then time the click. Baseline: just the click."""
    thread_ts = new_thread_ts()
    approval_id = "ap_baselinebaseline"
    if endpoint.approvals:
        approval_id = await pause(endpoint, fakes, thread_ts)
    return await click_once(endpoint, fakes, thread_ts, approval_id, window)


def senders_case(senders: int) -> str:
    return f"{senders} concurrent sender" + ("s" if senders > 1 else "")


def _ms(seconds: list[float]) -> tuple[float, ...]:
    return tuple(s * 1000 for s in seconds)


def answered_at(fakes: Fakes, threads: set[str], text: str | None = None) -> dict[str, float]:
    """When each thread's first matching chat.postMessage reached the fake Slack."""
    found: dict[str, float] = {}
    for call in fakes.slack.calls:
        ts = str(call.args.get("thread_ts"))
        if call.method != "chat.postMessage" or ts not in threads:
            continue
        if text is not None and call.args.get("text") != text:
            continue
        found[ts] = min(found.get(ts, call.at), call.at)
    return found


async def _send_all(endpoint: Endpoint, requests: dict[str, SignedRequest]) -> dict[str, float]:
    sent_at: dict[str, float] = {}

    async def send(ts: str) -> None:
        sent_at[ts] = time.monotonic()
        await endpoint.post(requests[ts])

    await asyncio.gather(*(send(ts) for ts in requests))
    return sent_at


async def mentions_together(endpoint: Endpoint, fakes: Fakes, senders: int) -> list[float]:
    """`senders` mentions sent at once; seconds from each one's sending to its answer."""
    requests = {
        ts: endpoint.requests.mention(text="hello", user=ASKER, channel=CHANNEL, ts=ts)
        for ts in (new_thread_ts() for _ in range(senders))
    }
    sent_at = await _send_all(endpoint, requests)
    await fakes.wait_post(in_threads(set(requests)), count=senders, within=600)
    answers = answered_at(fakes, set(requests))
    await settle(endpoint, fakes)
    return [answers[ts] - sent_at[ts] for ts in requests]


async def clicks_together(endpoint: Endpoint, fakes: Fakes, senders: int) -> list[float]:
    """`senders` runs paused (not timed), then every card's Approve clicked at once; seconds
    from each click to its thread's answer."""
    threads = [new_thread_ts() for _ in range(senders)]
    await asyncio.gather(
        *(
            endpoint.post(
                endpoint.requests.mention(text=DELETE_REQUEST, user=ASKER, channel=CHANNEL, ts=ts)
            )
            for ts in threads
        )
    )
    cards = await fakes.wait_post(in_threads(set(threads)), count=senders, within=600)
    approval_ids = {str(c.args.get("thread_ts")): approval_id_of(c) for c in cards}
    await settle(endpoint, fakes)
    requests = {
        ts: endpoint.requests.block_actions(
            user=APPROVER,
            action_id=APPROVE_ACTION,
            value=approval_ids[ts],
            channel=CHANNEL,
            message_ts=ts,
            thread_ts=ts,
            response_url=fakes.slack.response_url("click"),
        )
        for ts in threads
    }
    sent_at = await _send_all(endpoint, requests)
    answered = in_threads(set(threads))
    await fakes.wait_post(
        lambda c: answered(c) and c.args.get("text") == FINAL_ANSWER, count=senders, within=600
    )
    answers = answered_at(fakes, set(threads), FINAL_ANSWER)
    await settle(endpoint, fakes)
    return [answers[ts] - sent_at[ts] for ts in threads]


async def scenario_mentions(
    endpoint: Endpoint,
    fakes: Fakes,
    plan: Plan,
    db: str,
    window: Window = nullcontext,
    *,
    number: int = 1,
) -> list[Measurement]:
    """One sender, then (scenario 1 only) rounds of `plan.together` senders at once."""
    count = plan.mentions if number == 1 else plan.slow_mentions
    for _ in range(plan.warmup if number == 1 else 1):
        await mention_once(endpoint, fakes)
    samples = [await mention_once(endpoint, fakes, window) for _ in range(count)]
    found = [Measurement(number, senders_case(1), db, endpoint.name, _ms(samples), x=1)]
    if number == 1:
        senders, rounds = plan.together
        together: list[float] = []
        for _ in range(rounds):
            together += await mentions_together(endpoint, fakes, senders)
        m = Measurement(1, senders_case(senders), db, endpoint.name, _ms(together), x=senders)
        found.append(m)
    return found


async def scenario_clicks(
    endpoint: Endpoint,
    fakes: Fakes,
    plan: Plan,
    db: str,
    window: Window = nullcontext,
    *,
    number: int = 2,
) -> list[Measurement]:
    """Scenario 2 (or 13, with a slow model); the same clicks give scenario 10, click → the
    card shows the decision. Then (scenario 2 only) rounds of `plan.together` clicks at once."""
    count = plan.clicks if number == 2 else plan.slow_clicks
    for _ in range(plan.warmup if number == 2 else 1):
        await approval_round_trip(endpoint, fakes)
    timed = [await approval_round_trip(endpoint, fakes, window) for _ in range(count)]
    found = [
        Measurement(number, senders_case(1), db, endpoint.name, _ms([a for a, _ in timed]), x=1)
    ]
    shown = [d for _, d in timed if d is not None]
    if number == 2 and shown:
        found.append(Measurement(10, senders_case(1), db, endpoint.name, _ms(shown), x=1))
    if number == 2 and endpoint.approvals:
        senders, rounds = plan.together
        together: list[float] = []
        for _ in range(rounds):
            together += await clicks_together(endpoint, fakes, senders)
        m = Measurement(2, senders_case(senders), db, endpoint.name, _ms(together), x=senders)
        found.append(m)
    return found


async def _burst(endpoint: Endpoint, fakes: Fakes, senders: int) -> list[float]:
    """Every sender sends one mention at once; returns when all of them are answered."""
    threads = [new_thread_ts() for _ in range(senders)]
    acks = await asyncio.gather(
        *(
            endpoint.post(
                endpoint.requests.mention(text="hello", user=ASKER, channel=CHANNEL, ts=ts)
            )
            for ts in threads
        )
    )
    await fakes.wait_post(in_threads(set(threads)), count=senders, within=600)
    await settle(endpoint, fakes)
    return acks


async def scenario_acks(endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str) -> list[Measurement]:
    """Rounds of `senders` simultaneous mentions; a round starts once the last one is answered."""
    await _burst(endpoint, fakes, 10)
    found = []
    for senders, rounds in plan.acks:
        acks = [ack for _ in range(rounds) for ack in await _burst(endpoint, fakes, senders)]
        found.append(Measurement(3, senders_case(senders), db, endpoint.name, _ms(acks), x=senders))
    return found


async def scenario_pending(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    threadgate = endpoint.threadgate
    if threadgate is None:
        raise BenchmarkError("scenario 4 measures the bot only")
    for _ in range(max(1, plan.warmup // 4)):
        await approval_round_trip(endpoint, fakes)
    found, seeded = [], 0
    for size in plan.pending:
        await add_pending_approvals(
            threadgate.db, team_id=fakes.slack.team_id, start=seeded, count=size - seeded
        )
        seeded = size
        samples = [
            (await approval_round_trip(endpoint, fakes))[0] for _ in range(plan.growth_clicks)
        ]
        found.append(Measurement(4, f"{size:,} pending", db, "bot", _ms(samples), x=size))
    return found


async def scenario_history(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    threadgate = endpoint.threadgate
    if threadgate is None:
        raise BenchmarkError("scenario 5 measures the bot only")
    for _ in range(max(1, plan.warmup // 4)):
        await approval_round_trip(endpoint, fakes)
    # The sizes take turns, sample by sample, so that the machine's drift over the scenario
    # (other work on a shared host) weighs on every size alike instead of on the last one.
    samples: dict[int, list[float]] = {size: [] for size in plan.history}
    for _ in range(plan.growth_clicks):
        for size in plan.history:
            thread_ts = new_thread_ts()
            key = f"{fakes.slack.team_id}:{CHANNEL}:{thread_ts}"
            await add_history(threadgate.db.engine, thread_key=key, count=size)
            approval_id = await pause(endpoint, fakes, thread_ts)
            samples[size].append((await click_once(endpoint, fakes, thread_ts, approval_id))[0])
    found = []
    for size in plan.history:
        case = f"{size} earlier message" + ("s" if size > 1 else "")
        found.append(Measurement(5, case, db, "bot", _ms(samples[size]), x=size))
    return found

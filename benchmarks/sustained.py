"""Scenario 11: mentions at a fixed rate, held for a while, whatever the app answers.

An open loop: mention i leaves at its scheduled moment, not when the one before was answered,
so an app slower than the rate falls behind and its answers lag further and further. With one
sender the mentions are spread evenly (one every 1/rate s); with ten, ten leave at once every
10/rate s (the same rate in bursts). Reported per rate: the acks (HTTP responses), and each
answer's delay after its mention, in the first and the last third of the mentions sent. The
backlog grows when the last third's p50 delay is more than twice the first third's and over
BACKLOG_MS above it, or when answers are still missing DRAIN_SECONDS after the last mention.
Send and answer times come from one clock: the sender and the fake Slack share this process.
"""

import asyncio
import contextlib
import time

from benchmarks.harness import ASKER, CHANNEL, BenchmarkError, Endpoint, Fakes, new_thread_ts
from benchmarks.results import SUSTAINED_ACK_P99_MS, Measurement, Sustained, percentile
from benchmarks.scenarios import Plan, answered_at, settle

BURST = 10  # the senders of the second pattern
DRAIN_SECONDS = 60.0
BACKLOG_MS = 50.0


def backlog_grows(first_ms: float, last_ms: float, missing: int) -> bool:
    return missing > 0 or (last_ms > 2 * first_ms and last_ms - first_ms > BACKLOG_MS)


async def hold_rate(
    endpoint: Endpoint, fakes: Fakes, rate: int, senders: int, seconds: float, db: str
) -> Measurement:
    total = max(senders, int(rate * seconds) // senders * senders)
    threads = [new_thread_ts() for _ in range(total)]
    sent_at: dict[str, float] = {}
    acks: list[float] = []
    failures: list[Exception] = []

    async def send(ts: str) -> None:
        request = endpoint.requests.mention(text="hello", user=ASKER, channel=CHANNEL, ts=ts)
        sent_at[ts] = time.monotonic()
        try:
            acks.append(await endpoint.post(request))
        except Exception as exc:  # reported once every mention is sent
            failures.append(exc)

    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic() + 0.05
    for batch in range(total // senders):
        delay = start + batch * senders / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for ts in threads[batch * senders : (batch + 1) * senders]:
            tasks.append(asyncio.create_task(send(ts)))
    await asyncio.gather(*tasks)
    if failures:
        raise BenchmarkError(f"{endpoint.name} at {rate}/s: {failures[0]!r}")
    wanted = set(threads)
    with contextlib.suppress(AssertionError):  # what never came is counted as missing
        await fakes.slack.wait_for(
            "chat.postMessage",
            where=lambda c: str(c.args.get("thread_ts")) in wanted,
            count=total,
            timeout=DRAIN_SECONDS,
        )
    answers = answered_at(fakes, wanted)
    await settle(endpoint, fakes)
    third = max(1, total // 3)
    delays = [(answers[ts] - sent_at[ts]) * 1000 for ts in threads if ts in answers]
    first = [(answers[ts] - sent_at[ts]) * 1000 for ts in threads[:third] if ts in answers]
    last = [(answers[ts] - sent_at[ts]) * 1000 for ts in threads[-third:] if ts in answers]
    first_p50 = percentile(first, 50) if first else float("inf")
    last_p50 = percentile(last, 50) if last else float("inf")
    missing = total - len(answers)
    case = f"{rate}/s, " + ("1 sender" if senders == 1 else f"{senders} senders at once")
    return Measurement(
        11,
        case,
        db,
        endpoint.name,
        tuple(a * 1000 for a in acks),
        x=rate,
        sustained=Sustained(
            senders=senders,
            first_third_ms=first_p50,
            last_third_ms=last_p50,
            answer_p50_ms=percentile(delays, 50) if delays else float("inf"),
            missing=missing,
            grows=backlog_grows(first_p50, last_p50, missing),
        ),
    )


async def scenario_sustained(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    """Each rate in turn, one sender then ten; a rate an app already failed at with a pattern
    is not tried higher with that pattern (it would only queue longer)."""
    found = []
    for senders in (1, BURST):
        for rate in plan.rates:
            m = await hold_rate(endpoint, fakes, rate, senders, plan.rate_seconds, db)
            found.append(m)
            assert m.sustained is not None
            if m.sustained.grows or m.p99 >= SUSTAINED_ACK_P99_MS:
                break
    return found

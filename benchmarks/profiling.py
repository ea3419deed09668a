"""`--profile`: scenarios 1 and 2 of the bot under pyinstrument, as text profiles.

Only the timed windows are sampled (request sent → answer posted). The sender, the fakes and the
bot share the event loop's thread, so the profile holds all three: frames under `tests/fakes`,
`benchmarks` and aiohttp's client are the harness. SQLAlchemy runs its ORM inside greenlets,
which pyinstrument shows as separate roots (`Session.execute`, …) beside the event loop.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from pyinstrument import Profiler

from benchmarks.databases import DbKind, scratch_database
from benchmarks.harness import Fakes, bot_endpoint
from benchmarks.report import revision
from benchmarks.results import Measurement
from benchmarks.scenarios import Plan, scenario_clicks, scenario_mentions

INTERVAL = 0.0005  # seconds between samples

# Who a sample's time belongs to: the innermost of these on the sampled task's stack. Libraries
# that only do work for someone else (SQLAlchemy, aiohttp, openai, httpx, json…) are skipped.
OWNERS = (
    ("/tests/fakes/", "harness: fake Slack Web API and model server"),
    ("/benchmarks/", "harness: the sender (aiohttp client)"),
    ("/storage/", "bot: storage/ queries (SQLAlchemy ORM, from the event loop)"),
    ("/bot/", "bot: bot/ code (listeners, queue, approvals, run history, blocks)"),
    ("/agents/", "Agents SDK: Runner, RunState, openai client"),
    ("/slack_bolt/", "Bolt: request verification and dispatch"),
    ("/slack_sdk/", "slack_sdk: Web API client (posts, updates)"),
)
# When no owner is on the stack, what the sample was doing, by the innermost frame's file.
FALLBACKS = (
    ("/sqlalchemy/", "SQLAlchemy inside greenlets (storage/ statements)"),
    ("<built-in>", "waiting in epoll (database I/O, sockets): idle loop"),
    ("selectors.py", "waiting in epoll (database I/O, sockets): idle loop"),
    ("/aiohttp/", "aiohttp server and client internals"),
)
OTHER = "asyncio and other"


def _frame(identifier: str) -> tuple[str, str]:
    """(function, file) of a pyinstrument frame identifier."""
    name, path, *_rest = [*identifier.split("\x00"), "", ""]
    return name, path


def _is_callback(identifier: str) -> bool:
    """asyncio's Handle._run: below it runs one task step or callback, above it the loop."""
    name, path = _frame(identifier)
    return name == "_run" and path.endswith("asyncio/events.py")


@contextmanager
def _sampling(profiler: Profiler) -> Iterator[Profiler]:
    profiler.start()
    try:
        yield profiler
    finally:
        profiler.stop()


def _owner(stack: list[str]) -> str:
    """Only frames of the running callback count: above it is the event loop (and main())."""
    starts = [i for i, frame in enumerate(stack) if _is_callback(frame)]
    for frame in reversed(stack[starts[-1] + 1 :] if starts else []):
        path = _frame(frame)[1]
        for marker, name in OWNERS:
            if marker in path:
                return name
    leaf = _frame(stack[-1])[1] if stack else ""
    return next((name for marker, name in FALLBACKS if marker in leaf), OTHER)


def breakdown(profiler: Profiler, samples: int) -> str:
    """Sampled time by owner, as a table: seconds, share, and milliseconds per request."""
    session = profiler.last_session
    if session is None:
        return "(nothing sampled)\n"
    totals: dict[str, float] = {}
    for stack, seconds in session.frame_records:
        owner = _owner(stack)
        totals[owner] = totals.get(owner, 0.0) + seconds
    whole = sum(totals.values()) or 1.0
    lines = [f"{'owner':<70} {'s':>7} {'share':>6} {'ms/req':>7}"]
    for owner, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        per_request = seconds * 1000 / max(samples, 1)
        lines.append(f"{owner:<70} {seconds:7.2f} {seconds / whole:6.1%} {per_request:7.1f}")
    return "\n".join(lines) + "\n"


def _text(profiler: Profiler, title: str, m: Measurement) -> str:
    header = (
        f"{title}, code at commit {revision()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"{m.n} samples, p50 {m.p50:.1f} ms, p99 {m.p99:.1f} ms while profiled "
        f"(sampling slows the run; see docs/benchmarks.md for unprofiled times)\n"
        "Only the timed windows are sampled. Sender, fakes and bot share one thread.\n"
    )
    tree = profiler.output_text(unicode=True, color=False, show_all=False)
    flat = profiler.output_text(unicode=True, color=False, flat=True)
    top = "\n".join(flat.splitlines()[:60])
    owners = breakdown(profiler, m.n)
    return (
        f"{header}\n== where the time goes (main thread; the profiler roughly doubles times) ==\n"
        f"{owners}\n== call tree ==\n{tree}\n== functions by own time (top 60) ==\n{top}\n"
    )


async def profile(fakes: Fakes, plan: Plan, dbs: list[DbKind], workdir: Path) -> dict[str, str]:
    """File name → text profile, for each database and scenario 1 and 2."""
    written = {}
    for db in dbs:
        for scenario in (1, 2):
            profiler = Profiler(interval=INTERVAL, async_mode="disabled")
            window = partial(_sampling, profiler)
            async with scratch_database(db, workdir) as url, bot_endpoint(fakes, url) as bot:
                if scenario == 1:
                    m = (await scenario_mentions(bot, fakes, plan, db, window))[0]
                    title = f"Scenario 1, mention → answer, bot on {db}"
                else:
                    m = (await scenario_clicks(bot, fakes, plan, db, window))[0]
                    title = f"Scenario 2, click → resumed answer, bot on {db}"
            written[f"profile-scenario{scenario}-{db}.txt"] = _text(profiler, title, m)
    return written

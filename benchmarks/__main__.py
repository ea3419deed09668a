"""uv run python -m benchmarks [--quick] [--scenario N] [--db sqlite|postgres] [--processes N]
    [--profile] [--out D]

Scenarios 1 to 6 and 10 to 13 run the bot with answers posted whole (`[agent] stream =
false`), as the baselines post theirs; 7 and 8 run it streaming, to time what a thread shows
first; 9 runs scenario 1 with JSON logs and /metrics scraped against text logs, on the same bot.
Scenario 10 comes from scenario 2's clicks (either number runs both); 11 holds mention rates;
12 and 13 are 1 and 2 with a model whose first token takes 300 ms. The targets compare the bot
with the in-memory SDK bot ("memory-sdk", benchmarks/memory_sdk.py).

Runs the scenarios, prints the table, and writes benchmarks.md and benchmarks.png (docs/ for a
full run or --profile; a temp dir for --quick and partial runs unless --out says where).
With --processes N (N ≥ 2), scenarios 1 and 2 also run on PostgreSQL against N bot processes
sharing one database, requests spread round-robin, reported as "bot xN" next to "bot".
Targets are reported, never asserted: the exit code is 0 unless the benchmark itself failed.
"""

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import report
from benchmarks.baseline import BaselineKind
from benchmarks.databases import DbKind, postgres_address, postgres_version, scratch_database
from benchmarks.harness import (
    BenchmarkError,
    Endpoint,
    Fakes,
    baseline_endpoint,
    bot_endpoint,
    memory_sdk_endpoint,
    running_fakes,
)
from benchmarks.memory import measure
from benchmarks.operations import scenario_operations
from benchmarks.process import AppName, app_process, bot_processes, spread_name
from benchmarks.results import Measurement, Memory, checks
from benchmarks.scenarios import (
    FULL,
    QUICK,
    Plan,
    scenario_acks,
    scenario_clicks,
    scenario_history,
    scenario_mentions,
    scenario_pending,
)
from benchmarks.streaming import scenario_first_sign, scenario_first_token
from benchmarks.sustained import scenario_sustained

DOCS = Path(__file__).resolve().parents[1] / "docs"
APP_ORDER = {"baseline": 0, "baseline-sdk": 1, "memory-sdk": 2, "bot": 3}  # then "bot xN"
SPREAD_SCENARIOS = (1, 2, 12, 13)  # the ones --processes runs on several bot processes
DB_ORDER = {"-": 0, "sqlite": 1, "postgres": 2}
SCENARIO_NUMBERS = range(1, 14)
APART_SCENARIOS = (3, 11)  # the app alone in a child process, unless the plan says otherwise
SLOW_MODEL = 0.3  # scenarios 12 and 13: seconds until the model's first token
STREAMING_SCENARIOS = (7, 8)  # the bot streams its answers there


@dataclass
class Run:
    measurements: list[Measurement] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    dbs: list[DbKind] = field(default_factory=list)
    postgres: str | None = None


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny samples (CI); output to a temp dir"
    )
    parser.add_argument(
        "--scenario",
        type=int,
        action="append",
        choices=SCENARIO_NUMBERS,
        help="run only these (repeatable)",
    )
    parser.add_argument(
        "--db", choices=["sqlite", "postgres"], help="run the bot on this database only"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile scenarios 1 and 2 of the bot"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="also run scenarios 1 and 2 on PostgreSQL against N bot processes (N ≥ 2) "
        "sharing one database, requests round-robin; reported as bot xN (default 1: not run)",
    )
    parser.add_argument(
        "--model-latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="milliseconds the fake model takes per call (default 0: only the apps' own work "
        "shows); a run with latency writes to a temp dir unless --out says where",
    )
    parser.add_argument("--out", type=Path, help="where to write the report, plot and profiles")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.model_latency < 0:
        parser.error("--model-latency must not be negative")
    return args


async def _one(
    number: int, endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    if number == 1:
        return await scenario_mentions(endpoint, fakes, plan, db)
    if number == 2:
        return await scenario_clicks(endpoint, fakes, plan, db)
    if number == 11:
        return await scenario_sustained(endpoint, fakes, plan, db)
    if number in (12, 13):
        with fakes.paced_model(first_token_delay=SLOW_MODEL, token_delay=0.0):
            if number == 12:
                return await scenario_mentions(endpoint, fakes, plan, db, number=12)
            return await scenario_clicks(endpoint, fakes, plan, db, number=13)
    if number == 3:
        return await scenario_acks(endpoint, fakes, plan, db)
    if number == 4:
        return await scenario_pending(endpoint, fakes, plan, db)
    if number == 5:
        return await scenario_history(endpoint, fakes, plan, db)
    if number == 7:
        return await scenario_first_sign(endpoint, fakes, plan, db)
    if number == 8:
        return await scenario_first_token(endpoint, fakes, plan, db)
    if number == 9:
        return await scenario_operations(endpoint, fakes, plan, db)
    raise BenchmarkError(f"scenario {number} is not a latency scenario")


def _summary(found: list[Measurement], started: float) -> str:
    parts = [f"{m.case}: p50 {m.p50:.1f} / p99 {m.p99:.1f} ms" for m in found]
    return "; ".join(parts) + f"  ({time.monotonic() - started:.0f} s)"


@asynccontextmanager
async def _endpoint(
    app: AppName,
    apart: bool,
    fakes: Fakes,
    db: DbKind | None,
    workdir: Path,
    *,
    stream: bool = False,
) -> AsyncIterator[Endpoint]:
    """`apart`: the app runs in its own process; else it is served in this one. `stream`: the
    bot streams its answers, served in this process only (a child posts them whole)."""
    assert not (apart and stream)
    if app == "memory-sdk":
        if apart:
            async with app_process(app, fakes, "sqlite+aiosqlite://") as child:
                yield child.endpoint
        else:
            async with memory_sdk_endpoint(fakes) as endpoint:
                yield endpoint
        return
    if app != "bot":
        kind: BaselineKind = "openai" if app == "baseline" else "agents"
        if apart:
            async with app_process(app, fakes, "sqlite+aiosqlite://") as child:
                yield child.endpoint
        else:
            async with baseline_endpoint(fakes, kind) as endpoint:
                yield endpoint
        return
    assert db is not None
    async with scratch_database(db, workdir) as url:
        if apart:
            async with app_process("bot", fakes, url) as child:
                yield child.endpoint
        else:
            async with bot_endpoint(fakes, url, stream=stream) as endpoint:
                yield endpoint


async def _spread(
    run: Run, fakes: Fakes, plan: Plan, wanted: set[int], workdir: Path, processes: int
) -> None:
    """Scenarios 1 and 2 against `processes` bot processes on one scratch PostgreSQL database."""
    name = spread_name(processes)
    for number in SPREAD_SCENARIOS:
        if number not in wanted:
            continue
        started = time.monotonic()
        async with (
            scratch_database("postgres", workdir) as url,
            bot_processes(fakes, url, processes) as endpoint,
        ):
            found = await _one(number, endpoint, fakes, plan, "postgres")
        _say(f"S{number} {name} on postgres: {_summary(found, started)}")
        run.measurements += found


async def _latency(run: Run, fakes: Fakes, plan: Plan, wanted: set[int], workdir: Path) -> None:
    jobs: list[tuple[AppName, DbKind | None, int]] = [
        ("baseline", None, 1),
        ("baseline", None, 2),
        ("baseline", None, 3),
        ("baseline-sdk", None, 1),
        ("baseline-sdk", None, 2),
    ]
    jobs += [("memory-sdk", None, n) for n in (1, 2, 3, 7, 11, 12, 13)]
    jobs += [("bot", db, n) for db in run.dbs for n in (1, 2, 3, 4, 5, 9, 11, 12, 13)]
    for app, db, number in jobs:
        if number not in wanted:
            continue
        started = time.monotonic()
        apart = number in APART_SCENARIOS and plan.acks_apart
        async with _endpoint(app, apart, fakes, db, workdir) as endpoint:
            found = await _one(number, endpoint, fakes, plan, db or "-")
        _say(f"S{number} {app}{f' on {db}' if db else ''}: {_summary(found, started)}")
        run.measurements += found


async def _streaming(run: Run, fakes: Fakes, plan: Plan, wanted: set[int], workdir: Path) -> None:
    """Scenarios 7 and 8 share one streaming bot and database per database kind, 7 first:
    starting a bot on a fresh database takes seconds, which --quick cannot spare twice."""
    numbers = [n for n in STREAMING_SCENARIOS if n in wanted]
    if not numbers:
        return
    for db in run.dbs:
        if db not in plan.streaming_dbs:
            _say(
                f"S{'+S'.join(map(str, numbers))} on {db}: skipped, this plan runs them on "
                + ", ".join(plan.streaming_dbs)
            )
            continue
        async with _endpoint("bot", False, fakes, db, workdir, stream=True) as endpoint:
            for number in numbers:
                started = time.monotonic()
                found = await _one(number, endpoint, fakes, plan, db)
                _say(f"S{number} bot, streaming, on {db}: {_summary(found, started)}")
                run.measurements += found


async def collect(args: argparse.Namespace, workdir: Path) -> Run:
    plan = QUICK if args.quick else FULL
    wanted = set(args.scenario or SCENARIO_NUMBERS)
    if 10 in wanted:
        wanted.add(2)  # scenario 10 is timed on scenario 2's clicks
    run = Run(postgres=await postgres_version())
    run.dbs = [args.db] if args.db else ["sqlite", "postgres"]
    if "postgres" in run.dbs and run.postgres is None:
        if args.db == "postgres":
            raise BenchmarkError(f"PostgreSQL is not reachable at {postgres_address()}")
        _say(f"PostgreSQL is not reachable at {postgres_address()}: running on SQLite only")
        run.dbs = ["sqlite"]
    async with running_fakes(model_latency=args.model_latency / 1000) as fakes:
        if args.profile:
            from benchmarks.profiling import profile  # pyinstrument only when asked for

            run.profiles = await profile(fakes, plan, run.dbs, workdir)
            return run
        await _latency(run, fakes, plan, wanted, workdir)
        await _streaming(run, fakes, plan, wanted, workdir)
        if args.processes > 1 and wanted.intersection(SPREAD_SCENARIOS):
            if "postgres" in run.dbs:
                await _spread(run, fakes, plan, wanted, workdir, args.processes)
            else:
                _say(f"--processes {args.processes}: skipped, it runs on PostgreSQL only")
        if 6 in wanted:
            for app in plan.memory_apps:
                started = time.monotonic()
                m = await measure(app, fakes=fakes, threads=plan.memory_threads, workdir=workdir)
                took = time.monotonic() - started
                _say(f"S6 {app}: RSS {m.rss_start_mb:.0f} → {m.rss_end_mb:.0f} MB ({took:.0f} s)")
                run.memory.append(m)
    run.measurements.sort(
        key=lambda m: (m.scenario, APP_ORDER.get(m.app, len(APP_ORDER)), DB_ORDER[m.db], m.x or 0)
    )
    return run


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return Path(args.out)
    partial = args.scenario is not None or args.db is not None or args.model_latency > 0
    if args.quick or (partial and not args.profile):
        return Path(tempfile.mkdtemp(prefix="threadgate-bench-"))
    return DOCS


def write(run: Run, out: Path, argv: list[str], args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in run.profiles.items():
        (out / name).write_text(text, encoding="utf-8")
        _say(f"wrote {out / name}")
    if not (run.measurements or run.memory):
        return
    # matplotlib is imported only now: loaded during the run, its objects would lengthen the
    # in-process bot's garbage collections.
    from benchmarks.plot import write_plot

    found = checks(run.measurements, run.memory, run.dbs)
    sys.stdout.write(report.text_report(run.measurements, run.memory, found))
    plot = "benchmarks.png" if write_plot(out / "benchmarks.png", run.measurements) else None
    profiles = sorted(p.name for p in out.glob("profile-*.txt"))
    path = out / "benchmarks.md"
    path.write_text(
        report.markdown_report(
            path,
            ms=run.measurements,
            memory=run.memory,
            checks=found,
            host=report.machine(run.postgres if "postgres" in run.dbs else None),
            command=" ".join(["uv run python -m benchmarks", *argv]),
            model_latency_ms=args.model_latency,
            plot=plot,
            profiles=profiles,
        ),
        encoding="utf-8",
    )
    _say(f"wrote {path}" + (f" and {out / plot}" if plot else ""))


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="threadgate-bench-work-") as workdir:
            run = asyncio.run(collect(args, Path(workdir)))
    except BenchmarkError as exc:
        _say(f"benchmark failed: {exc}")
        return 1
    write(run, _out_dir(args), argv, args)
    _say(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

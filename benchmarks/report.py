"""The results as a table on stdout and as docs/benchmarks.md, with the machine they ran on."""

import os
import platform
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from benchmarks.results import SCENARIOS, Check, Measurement, Memory

PACKAGES = ("openai-agents", "openai", "slack-bolt", "sqlalchemy", "aiohttp")
# Text between these markers in an existing report is carried into the regenerated one.
KEEP_START = "<!-- kept between runs: findings -->"
KEEP_END = "<!-- end of kept text -->"


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gb: float
    python: str
    system: str
    sqlite: str
    postgres: str | None
    packages: dict[str, str]
    date: str
    load: tuple[float, float, float]  # 1, 5 and 15 minute load averages when the run ended
    revision: str  # the code that ran: commit, and whether bot/ or storage/ had local changes


def machine(postgres: str | None) -> Machine:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 0,
        ram_gb=psutil.virtual_memory().total / 1024**3,
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
        sqlite=sqlite3.sqlite_version,
        postgres=postgres,
        packages={name: version(name) for name in PACKAGES},
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load=os.getloadavg(),
        revision=revision(),
    )


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(  # noqa: S603 - a fixed git command on our own checkout
        [git, *args], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def revision() -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--", "bot", "storage")
    return commit + (" with uncommitted changes in bot/ or storage/" if changed else "")


def _rows(ms: Sequence[Measurement]) -> list[list[str]]:
    return [
        [
            f"{m.scenario}",
            m.case,
            m.db,
            m.app,
            f"{m.n}",
            f"{m.p50:.1f}",
            f"{m.p99:.1f}",
        ]
        for m in ms
    ]


def _memory_rows(memory: Sequence[Memory]) -> list[list[str]]:
    return [
        [
            m.app,
            f"{m.threads:,}",
            f"{m.rss_start_mb:.0f}",
            f"{m.rss_end_mb:.0f}",
            f"{m.rss_end_mb - m.rss_start_mb:+.1f}",
            f"{m.peak_mb:.0f}",
        ]
        for m in memory
    ]


def _sustained_rows(ms: Sequence[Measurement]) -> list[list[str]]:
    rows = []
    for m in ms:
        if m.sustained is None:
            continue
        held = m.sustained
        rows.append(
            [
                m.case,
                m.db,
                m.app,
                f"{m.n}",
                f"{m.p99:.1f}",
                f"{held.answer_p50_ms:.1f}",
                f"{held.first_third_ms:.1f}",
                f"{held.last_third_ms:.1f}",
                f"{held.missing}",
                "GROWS" if held.grows else "no",
            ]
        )
    return rows


SUSTAINED_HEAD = [
    "rate",
    "db",
    "app",
    "mentions",
    "ack p99 ms",
    "answer p50 ms",
    "answer p50, first third",
    "last third",
    "unanswered",
    "backlog",
]


def _check_rows(checks: Sequence[Check]) -> list[list[str]]:
    return [[c.target, c.value, c.limit, "yes" if c.met else "NO"] for c in checks]


LATENCY_HEAD = ["#", "case", "db", "app", "n", "p50 ms", "p99 ms"]
MEMORY_HEAD = ["app", "threads", "RSS start MB", "RSS end MB", "growth MB", "peak MB"]
CHECK_HEAD = ["target", "measured", "limit", "met"]


def _plain(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if c[:1].isdigit() else c.ljust(w)
            for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_report(
    ms: Sequence[Measurement], memory: Sequence[Memory], checks: Sequence[Check]
) -> str:
    parts = []
    if ms:
        parts.append(_plain(LATENCY_HEAD, _rows(ms)))
    if _sustained_rows(ms):
        parts.append(_plain(SUSTAINED_HEAD, _sustained_rows(ms)))
    if memory:
        parts.append(_plain(MEMORY_HEAD, _memory_rows(memory)))
    if checks:
        parts.append(_plain(CHECK_HEAD, _check_rows(checks)))
    return "\n\n".join(parts) + "\n"


def _kept(path: Path) -> str:
    try:
        old = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    if KEEP_START in old and KEEP_END in old:
        return old.split(KEEP_START, 1)[1].split(KEEP_END, 1)[0].strip("\n")
    return ""


def _machine_lines(m: Machine) -> list[str]:
    packages = ", ".join(f"{name} {v}" for name, v in m.packages.items())
    return [
        f"- CPU: {m.cpu}, {m.cores} cores; RAM: {m.ram_gb:.1f} GB",
        f"- {m.system}; Python {m.python}; SQLite {m.sqlite}",
        f"- PostgreSQL {m.postgres or '(not used in this run)'}",
        f"- {packages}",
        f"- Code: commit {m.revision}",
        f"- Run on {m.date}; load average at the end (1, 5, 15 min): "
        + ", ".join(f"{x:.2f}" for x in m.load)
        + " (other work on the machine shows here, and in the spread of the samples)",
    ]


METHOD = """\
- The apps are served on 127.0.0.1 (aiohttp `AppRunner`, port 0) and driven over HTTP with
  Slack-signed requests (`tests/fakes/slack_requests.py`); Bolt verifies every signature.
- The Slack Web API and the model are the test fakes (`tests/fakes/`), which answer at once, so
  only the apps' own work shows. Real Slack and model latency would add to both apps alike,
  except that the bot makes more Slack calls on the way to an answer (see the findings).
- A sample ends when the fake Slack receives the answer's `chat.postMessage` in that thread
  (scenario 3: when the HTTP response arrives; 7 and 8: see below). Between samples the app
  goes idle. Each scenario starts with warm-up requests that are not counted.
- **bot**: the real threadgate (`build_app` + `build_web_app`, which builds its own model
  client from `OPENAI_BASE_URL`, here the fake model server), config: the tools of
  `tests/tools_for_tests.py`, all needing approval, approver `UAPPROVER1`; `history_limit` at its
  default, 100; no `THREADGATE_ENCRYPTION_KEY` (the default). A fresh, migrated database per
  scenario: a temp SQLite file, or a scratch PostgreSQL database created and dropped by the run.
- Scenarios 1 to 6 measure answers posted whole: the bot runs with `[agent] stream = false`
  there, as the baselines post each answer with one `chat.postMessage`. It still sets its
  "is thinking…" status on the way (`assistant.threads.setStatus`), which the baselines do not.
- **memory-sdk**: `benchmarks/memory_sdk.py`, the bot a team would write itself, and the app
  the targets compare with: a Bolt `AsyncApp` running the agent `bot.agent.build.build_agent`
  builds from the same config (same tools, same approval policy) on the same model client,
  posting the same cards (`bot.slack.blocks`). A paused run's `RunState` waits in a dict; a click
  updates the card with the decision, approves the call on that state and resumes it. No
  database, no queue, no leases, no outbox, no status, no streaming.
- **10 concurrent senders** (scenarios 1 and 2): rounds of 10 mentions (or 10 clicks on 10
  paused runs) sent at once; each sample is one thread's time to its answer, read off the fake
  Slack's record of the call (`RecordedCall.at`, the sender's clock).
- **10. click → the card shows the decision**: on scenario 2's single clicks, from sending the
  click to the fake Slack receiving the `chat.update` whose text reads "<tool>: approved".
- **11. sustained**: `benchmarks/sustained.py`, an open loop at 10, 50 and 100 mentions a
  second for 30 s, spread evenly (1 sender) or 10 at once (10 senders); the app in its own
  process as in scenario 3. A rate is held when the ack p99 stays under 300 ms and the backlog
  does not grow (last third's answer delay p50 at most twice the first third's, or within 50 ms
  of it, and every answer in within 60 s of the last mention).
- **12 and 13**: scenarios 1 and 2 at one sender with the fake model's first token after 300 ms
  (`FakeModelServer.first_token_delay`), for every app with a model.
- **baseline**: `benchmarks/baseline.py`, a least-work Bolt `AsyncApp` (no database, no queue):
  ack, one plain `openai` `AsyncOpenAI.responses.create`, one `chat.postMessage` in the thread,
  for a mention and for a click alike. The targets compare with it. **baseline-sdk** is the same
  app calling the Agents SDK's `Runner.run` (a tool-less agent, no session) instead: the gap
  between the two is the SDK's share, the gap from baseline-sdk to the bot is threadgate's own.
- Scenarios 1, 2, 4 and 5 serve the app in the benchmark's own process: sender, fakes and app
  share one event loop, the same for the bot and the baselines.
- Scenario 2 first pauses a run (a mention whose model reply calls `delete_customer`), untimed,
  then times the click on Approve until the resumed run's final answer is posted.
- **bot xN** (with `--processes N`): scenarios 1 and 2 on PostgreSQL against N bot processes
  (`benchmarks/process.py`, as in scenario 3) sharing one scratch database. The signed requests
  go to the processes in turn (round-robin), so in scenario 2 the click reaches another process
  than the mention that paused the run. Between samples every process goes idle. Unlike the
  one-process **bot** rows, these processes do not share the sender's and the fakes' process;
  with N processes on a machine of few cores they share its CPU with them and each other.
- Scenario 3 runs the app alone in a child process (`benchmarks/process.py`), so that the
  sender's and the fakes' CPU do not slow its acks: N senders each send one mention at the same
  moment; the next round starts when every mention of the round is answered.
- Scenario 4 adds other threads with waiting runs and pending approvals (bulk inserts of 1,000
  rows per transaction), then checkpoints SQLite's WAL / runs ANALYZE on PostgreSQL, as a
  database that grew over days would be. Scenario 5 writes the thread's earlier messages with
  the SDK's own `SQLAlchemySession.add_items` (one transaction, into the tables the bot reads)
  before the mention that pauses.
- Scenario 6 runs each app alone in a child process, on SQLite: 20 warm-up threads, then N
  threads, 10 at a time; RSS of the child read with psutil.
- Scenario 5's sizes take turns sample by sample (each sample a new thread), so drift of a
  shared machine weighs on every size alike; scenario 4's sizes build on each other and run one
  after the other.
- Scenarios 7 and 8 run the bot with `[agent] stream = true`, in this process, one bot and
  database per database kind for both (7 first). N senders each send one mention at the same
  moment; the next round starts once every thread of the round has its answer and its status
  cleared. Times come from the fakes' records, not from when the benchmark looked: the fake
  Slack stamps each call when it has read it, the fake model each streamed delta when it has
  written it, and the sender each mention just before sending it, all with `time.monotonic()`
  in this one process.
- Scenario 7: from sending a mention to the first visible sign in its thread, whichever comes
  first: an `assistant.threads.setStatus` with a non-empty status, a `chat.startStream` /
  `appendStream` / `stopStream` carrying answer text, or the :eyes: reaction that stands in for
  the status where Slack refuses one. The model answers at once ("ok"). One warm-up round at
  the most senders.
- Scenario 8: from the fake model sending a thread's first text delta to the thread's first
  answer text reaching the fake Slack in a `chat.*Stream` call. The model's first token takes
  300 ms, and 9 more words follow 20 ms apart; each mention carries its thread's timestamp,
  which is how a model request is matched with its thread. One warm-up mention.
- p50 and p99 interpolate linearly between ranks; with 60 samples (scenarios 4 and 5) p99 is
  close to the worst sample; with 50 (scenarios 7 and 8 at 1 sender) it lies between the two
  worst."""


def markdown_report(
    path: Path,
    *,
    ms: Sequence[Measurement],
    memory: Sequence[Memory],
    checks: Sequence[Check],
    host: Machine,
    command: str,
    plot: str | None,
    profiles: Sequence[str],
    model_latency_ms: float = 0.0,
) -> str:
    lines = [
        "# threadgate benchmarks",
        "",
        "Latency and memory of the bot against the bot a team would write itself on the same "
        "Agents SDK, agent, tools and cards, keeping paused runs in memory (memory-sdk), and "
        "against a least-work Bolt app (baseline, baseline-sdk), on the same fakes.",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "uv run python -m benchmarks               # all of it, a few minutes; rewrites docs/",
        "uv run python -m benchmarks --quick       # tiny samples, output to a temp dir (CI)",
        "uv run python -m benchmarks --scenario 2 --db postgres --out /tmp/bench",
        "uv run python -m benchmarks --processes 2 # adds bot x2: S1 and S2, two bot processes",
        "uv run python -m benchmarks --profile     # pyinstrument, scenarios 1 and 2 → docs/",
        "uv run python -m benchmarks.memory bot    # scenario 6 for one app, as JSON",
        "uv run python -m benchmarks --scenario 1 --scenario 2 --model-latency 300"
        "  # with a model that takes 300 ms",
        "uv run python -m benchmarks --scenario 7 --scenario 8 --out /tmp/bench"
        "  # streaming: first sign, first token",
        "```",
        "",
        f"This file was written by `{command}`. PostgreSQL: 127.0.0.1:5432, user postgres, "
        "database `test` (set `THREADGATE_BENCH_PG` to use another server).",
        "",
        "## Machine",
        "",
        *_machine_lines(host),
        f"- Fake model latency: {model_latency_ms:g} ms per call"
        + (" (only the apps' own work shows)" if model_latency_ms == 0 else ""),
        "",
        "## Targets",
        "",
        "Computed from this run and reported, never asserted.",
        "",
        _markdown(CHECK_HEAD, _check_rows(checks)) if checks else "(none computed)",
        "",
        "## Results",
        "",
        "Scenarios: " + "; ".join(f"{n}. {name}" for n, name in SCENARIOS.items()) + ".",
        "",
    ]
    if ms:
        lines += [_markdown(LATENCY_HEAD, _rows(ms)), ""]
    if _sustained_rows(ms):
        lines += [
            "Scenario 11, mentions at a fixed rate: acks, and each answer's delay after its "
            "mention (a rate an app failed is not tried higher with the same senders):",
            "",
            _markdown(SUSTAINED_HEAD, _sustained_rows(ms)),
            "",
        ]
    if memory:
        lines += [_markdown(MEMORY_HEAD, _memory_rows(memory)), ""]
    if plot:
        lines += [f"![Scenarios 3, 4, 5 and 11]({plot})", ""]
    if profiles:
        lines += ["Profiles (pyinstrument): " + ", ".join(f"[{p}]({p})" for p in profiles), ""]
    lines += ["## Method", "", METHOD, "", "## Findings", "", KEEP_START]
    lines += [
        _kept(path) or "(Write findings here; this text survives the next run.)",
        KEEP_END,
        "",
    ]
    return "\n".join(lines)

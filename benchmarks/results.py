"""What a run measured, its percentiles, and the targets computed from it (never asserted)."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MENTION_RATIO = 1.5  # scenario 1 and 2: bot p50 at most 1.5x the in-memory SDK bot's
IN_MEMORY = "memory-sdk"  # the yardstick of issue 15's targets (benchmarks/memory_sdk.py)
SLOW_MENTION_RATIO = 1.05  # scenario 12, with a 300 ms model
SLOW_CLICK_RATIO = 1.10  # scenario 13, likewise
DECISION_P50_MS = 100.0  # scenario 10: the card shows the decision
SUSTAINED_ACK_P99_MS = 300.0  # scenario 11: a rate is held when its ack p99 stays under this …
SUSTAINED_SHARE = 2 / 3  # … and the bot's highest held rate is at least this of memory-sdk's
MEMORY_SDK_RATIO = 1.3  # scenario 6: RSS at most 1.3x the in-memory SDK bot's
ACK_P99_MS = 100.0  # scenario 3: ack p99 under 100 ms at the most senders
GROWTH = 0.20  # scenario 4 and 5: p50 at the largest size within 20% of the smallest
MEMORY_RATIO = 2.0  # scenario 6: RSS at most 2x the baseline's
FIRST_SIGN_P50_MS = 150.0  # scenario 7, at the most senders: first visible sign p50
FIRST_SIGN_P99_MS = 500.0  # … and p99
FIRST_TOKEN_MS = 50.0  # scenario 8: first streamed text at most this long after the model's
OPERATIONS_RATIO = 1.05  # scenario 9: JSON logs and /metrics cost under 5% of a mention

SCENARIOS = {
    1: "mention → answer",
    2: "click → resumed answer",
    3: "ack time (HTTP response)",
    4: "click → answer vs pending approvals",
    5: "click → answer vs thread history",
    6: "resident memory after N threads",
    7: "mention → first visible sign, streaming",
    8: "model's first token → first streamed text",
    9: "mention → answer, JSON logs and /metrics vs text logs",
    10: "click → the card shows the decision",
    11: "sustained mentions at a fixed rate (ack time; answer lag in the table below)",
    12: "mention → answer, model's first token after 300 ms",
    13: "click → resumed answer, model's first token after 300 ms",
}


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Sustained:
    """Scenario 11: how one rate was held."""

    senders: int  # 1: evenly spread; N: N mentions at once, every N/rate seconds
    first_third_ms: float  # p50 delay mention → answer, first third of the mentions sent
    last_third_ms: float  # … and last third
    answer_p50_ms: float
    missing: int  # answers that had not come when the run stopped waiting
    grows: bool  # the backlog grows: see benchmarks/sustained.py


@dataclass(frozen=True)
class Measurement:
    scenario: int
    case: str
    db: str  # "sqlite", "postgres", or "-" for the baseline, which has none
    app: str  # "baseline", "baseline-sdk", "bot", or "bot xN" for N bot processes on one database
    samples_ms: tuple[float, ...]
    x: int | None = None  # senders, pending approvals or earlier messages, for the plot
    sustained: Sustained | None = None  # scenario 11 only

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms) if self.samples_ms else float("nan")


@dataclass(frozen=True)
class Memory:
    app: str
    threads: int
    rss_start_mb: float  # after start-up and a few warm-up threads
    rss_end_mb: float  # after `threads` more threads were answered
    peak_mb: float  # the process's high-water mark (VmHWM)


@dataclass(frozen=True)
class Check:
    target: str
    value: str
    limit: str
    met: bool


def _find(
    ms: Sequence[Measurement], scenario: int, app: str, db: str | None, x: int | None = None
) -> Measurement | None:
    for m in ms:
        same_db = db is None or m.db == db
        if m.scenario == scenario and m.app == app and same_db and (x is None or m.x == x):
            return m
    return None


def _ratio_checks(
    ms: Sequence[Measurement], scenario: int, dbs: Sequence[str], limit: float = MENTION_RATIO
) -> list[Check]:
    """Every bot row against the in-memory SDK bot's at the same concurrency; the least-work
    baseline's ratio rides along where it has a row, for the record."""
    checks: list[Check] = []
    bots = [m for m in ms if m.scenario == scenario and m.app.startswith("bot") and m.db in dbs]
    for bot in bots:
        ref = _find(ms, scenario, IN_MEMORY, None, bot.x)
        if ref is None:
            continue
        base = _find(ms, scenario, "baseline", None, bot.x)
        ratio = bot.p50 / ref.p50
        also = f"; {bot.p50 / base.p50:.1f}x the least-work baseline" if base else ""
        checks.append(
            Check(
                f"S{scenario} {SCENARIOS[scenario]} p50 at {bot.case}, {bot.app} / {IN_MEMORY} "
                f"({bot.db})",
                f"{ratio:.2f}x ({bot.p50:.1f} / {ref.p50:.1f} ms{also})",
                f"≤ {limit:.2f}x",
                ratio <= limit,
            )
        )
    return checks


def held_rate(ms: Sequence[Measurement], app: str, db: str | None, senders: int) -> int:
    """The highest rate of scenario 11 whose ack p99 stayed under the limit with no growing
    backlog, every lower rate held too; 0 when none was."""
    held = 0
    rows = sorted(
        (
            m
            for m in ms
            if m.scenario == 11
            and m.app == app
            and (db is None or m.db == db)
            and m.sustained is not None
            and m.sustained.senders == senders
        ),
        key=_x,
    )
    for m in rows:
        assert m.sustained is not None
        if m.sustained.grows or m.p99 >= SUSTAINED_ACK_P99_MS:
            break
        held = m.x or 0
    return held


def _sustained_checks(ms: Sequence[Measurement], dbs: Sequence[str]) -> list[Check]:
    checks = []
    senders_seen = sorted({m.sustained.senders for m in ms if m.sustained is not None})
    for senders in senders_seen:
        ref = held_rate(ms, IN_MEMORY, None, senders)
        if not any(m.app == IN_MEMORY and m.scenario == 11 for m in ms):
            continue
        for db in dbs:
            if not any(m.app == "bot" and m.db == db and m.scenario == 11 for m in ms):
                continue
            bot = held_rate(ms, "bot", db, senders)
            share = bot / ref if ref else float("nan")
            who = "1 sender" if senders == 1 else f"{senders} senders at once"
            checks.append(
                Check(
                    f"S11 highest rate held (ack p99 < {SUSTAINED_ACK_P99_MS:.0f} ms, no growing "
                    f"backlog), {who}, bot / {IN_MEMORY} ({db})",
                    f"{bot}/s vs {ref}/s" + (f" ({share:.0%})" if ref else ""),
                    f"≥ {SUSTAINED_SHARE:.0%}",
                    bool(ref) and share >= SUSTAINED_SHARE,
                )
            )
    return checks


def _decision_checks(ms: Sequence[Measurement], dbs: Sequence[str]) -> list[Check]:
    checks = []
    for m in ms:
        if m.scenario == 10 and m.app.startswith("bot") and m.db in dbs:
            ref = _find(ms, 10, IN_MEMORY, None)
            also = f" ({IN_MEMORY}: {ref.p50:.1f} ms)" if ref else ""
            checks.append(
                Check(
                    f"S10 click → the card shows the decision p50, {m.app} ({m.db})",
                    f"{m.p50:.1f} ms{also}",
                    f"≤ {DECISION_P50_MS:.0f} ms",
                    m.p50 <= DECISION_P50_MS,
                )
            )
    return checks


def _growth_checks(ms: Sequence[Measurement], scenario: int, dbs: Sequence[str]) -> list[Check]:
    checks = []
    for db in dbs:
        series = sorted((m for m in ms if m.scenario == scenario and m.db == db), key=_x)
        if len(series) < 2:
            continue
        small, large = series[0], series[-1]
        change = large.p50 / small.p50 - 1
        checks.append(
            Check(
                f"S{scenario} p50 at {large.case} vs {small.case} ({db})",
                f"{change:+.0%} ({large.p50:.1f} vs {small.p50:.1f} ms)",
                f"within ±{GROWTH:.0%}",
                abs(change) <= GROWTH,
            )
        )
    return checks


def _x(m: Measurement) -> int:
    return m.x or 0


def _by_senders(ms: Sequence[Measurement], scenario: int, db: str) -> list[Measurement]:
    return sorted(
        (m for m in ms if m.scenario == scenario and m.app == "bot" and m.db == db), key=_x
    )


def _first_sign_checks(ms: Sequence[Measurement], dbs: Sequence[str]) -> list[Check]:
    """At the most concurrent senders the run had (10 in a full run)."""
    checks = []
    for db in dbs:
        series = _by_senders(ms, 7, db)
        if not series:
            continue
        top = series[-1]
        for name, value, limit in (
            ("p50", top.p50, FIRST_SIGN_P50_MS),
            ("p99", top.p99, FIRST_SIGN_P99_MS),
        ):
            checks.append(
                Check(
                    f"S7 first visible sign {name} at {top.case} ({db})",
                    f"{value:.1f} ms",
                    f"≤ {limit:.0f} ms",
                    value <= limit,
                )
            )
    return checks


def _first_token_checks(ms: Sequence[Measurement], dbs: Sequence[str]) -> list[Check]:
    """p99 against the limit, so that nearly every answer is within it; p50 beside it."""
    checks = []
    for db in dbs:
        for m in _by_senders(ms, 8, db):
            checks.append(
                Check(
                    f"S8 first streamed text after the model's first token, p99 at {m.case} ({db})",
                    f"{m.p99:.1f} ms (p50 {m.p50:.1f} ms)",
                    f"≤ {FIRST_TOKEN_MS:.0f} ms",
                    m.p99 <= FIRST_TOKEN_MS,
                )
            )
    return checks


def _operations_checks(ms: Sequence[Measurement], dbs: Sequence[str]) -> list[Check]:
    checks = []
    for db in dbs:
        text, json = _find(ms, 9, "bot", db), _find(ms, 9, "bot json+metrics", db)
        counters = _find(ms, 9, "bot counters", db)
        if text is None or json is None:
            continue
        ratio = json.p50 / text.p50
        checks.append(
            Check(
                f"S9 mention p50 with JSON logs and /metrics / with text logs ({db})",
                f"{ratio:.3f}x ({json.p50:.1f} / {text.p50:.1f} ms)",
                f"≤ {OPERATIONS_RATIO}x",
                ratio <= OPERATIONS_RATIO,
            )
        )
        if counters is not None:
            share = counters.p50 / text.p50
            checks.append(
                Check(
                    f"S9 metric updates of one mention / mention p50 ({db})",
                    f"{share:.2%} ({counters.p50 * 1000:.0f} µs)",
                    f"< {OPERATIONS_RATIO - 1:.0%}",
                    share < OPERATIONS_RATIO - 1,
                )
            )
    return checks


def checks(ms: Sequence[Measurement], memory: Sequence[Memory], dbs: Sequence[str]) -> list[Check]:
    found = _ratio_checks(ms, 1, dbs) + _ratio_checks(ms, 2, dbs)
    found += _ratio_checks(ms, 12, dbs, SLOW_MENTION_RATIO)
    found += _ratio_checks(ms, 13, dbs, SLOW_CLICK_RATIO)
    found += _decision_checks(ms, dbs) + _sustained_checks(ms, dbs)
    found += _operations_checks(ms, dbs)
    for db in dbs:
        acks = [m for m in ms if m.scenario == 3 and m.app == "bot" and m.db == db]
        if acks:
            top = max(acks, key=_x)
            found.append(
                Check(
                    f"S3 ack p99 at {top.x} concurrent senders ({db})",
                    f"{top.p99:.1f} ms",
                    f"< {ACK_P99_MS:.0f} ms",
                    top.p99 < ACK_P99_MS,
                )
            )
    found += _growth_checks(ms, 4, dbs) + _growth_checks(ms, 5, dbs)
    found += _first_sign_checks(ms, dbs) + _first_token_checks(ms, dbs)
    by_app = {m.app: m for m in memory}
    if "bot" in by_app and IN_MEMORY in by_app:
        bot, ref = by_app["bot"], by_app[IN_MEMORY]
        ratio = bot.rss_end_mb / ref.rss_end_mb
        found.append(
            Check(
                f"S6 RSS after {bot.threads:,} threads, bot / {IN_MEMORY}",
                f"{ratio:.2f}x ({bot.rss_end_mb:.0f} / {ref.rss_end_mb:.0f} MB)",
                f"≤ {MEMORY_SDK_RATIO}x",
                ratio <= MEMORY_SDK_RATIO,
            )
        )
    if "bot" in by_app and "baseline" in by_app:
        bot, base = by_app["bot"], by_app["baseline"]
        ratio = bot.rss_end_mb / base.rss_end_mb
        found.append(
            Check(
                f"S6 RSS after {bot.threads:,} threads, bot / baseline",
                f"{ratio:.2f}x ({bot.rss_end_mb:.0f} / {base.rss_end_mb:.0f} MB)",
                f"≤ {MEMORY_RATIO}x",
                ratio <= MEMORY_RATIO,
            )
        )
    return found

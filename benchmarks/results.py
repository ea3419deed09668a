"""What a run measured, its percentiles, and the targets computed from it (never asserted)."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MENTION_RATIO = 1.5  # scenario 1 and 2: bot p50 at most 1.5x the baseline's
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
class Measurement:
    scenario: int
    case: str
    db: str  # "sqlite", "postgres", or "-" for the baseline, which has none
    app: str  # "baseline", "baseline-sdk", "bot", or "bot xN" for N bot processes on one database
    samples_ms: tuple[float, ...]
    x: int | None = None  # senders, pending approvals or earlier messages, for the plot

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


def _ratio_checks(ms: Sequence[Measurement], scenario: int, dbs: Sequence[str]) -> list[Check]:
    checks: list[Check] = []
    base = _find(ms, scenario, "baseline", None)
    if base is None:
        return checks
    bots = [m for m in ms if m.scenario == scenario and m.app.startswith("bot") and m.db in dbs]
    for bot in bots:
        ratio = bot.p50 / base.p50
        checks.append(
            Check(
                f"S{scenario} {SCENARIOS[scenario]} p50, {bot.app} / baseline ({bot.db})",
                f"{ratio:.2f}x ({bot.p50:.1f} / {base.p50:.1f} ms)",
                f"≤ {MENTION_RATIO}x",
                ratio <= MENTION_RATIO,
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

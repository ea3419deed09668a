"""docs/benchmarks.png: scenarios 3, 4, 5 and 11 side by side, each with its target drawn in."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from benchmarks.results import ACK_P99_MS, GROWTH, SUSTAINED_ACK_P99_MS, Measurement
from bot.config import AgentConfig

COLORS = {"sqlite": "tab:blue", "postgres": "tab:orange", "-": "tab:gray"}
APP_COLORS = {"memory-sdk": "tab:green", "baseline": "tab:gray"}


def _series(ms: Sequence[Measurement], scenario: int) -> dict[tuple[str, str], list[Measurement]]:
    found: dict[tuple[str, str], list[Measurement]] = {}
    for m in ms:
        if m.scenario == scenario and m.x is not None:
            found.setdefault((m.app, m.db), []).append(m)
    return {key: sorted(series, key=lambda m: m.x or 0) for key, series in found.items()}


def _label(app: str, db: str) -> str:
    return app if db == "-" else f"{app} ({db})"


def _lines(ax: Axes, series: dict[tuple[str, str], list[Measurement]]) -> None:
    for (app, db), points in series.items():
        xs = [m.x or 0 for m in points]
        color = APP_COLORS.get(app) or COLORS.get(db, "tab:purple")
        name = _label(app, db)
        ax.plot(xs, [m.p50 for m in points], "o-", color=color, label=f"{name} p50")
        ax.plot(xs, [m.p99 for m in points], "s--", color=color, alpha=0.5, label=f"{name} p99")
    sizes = sorted({m.x or 0 for points in series.values() for m in points})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{x:,}" for x in sizes])
    ax.minorticks_off()


def _not_run(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)


def _acks(ax: Axes, ms: Sequence[Measurement]) -> None:
    series = _series(ms, 3)
    if not series:
        return _not_run(ax, "3. Ack time vs concurrent senders")
    _lines(ax, series)
    ax.axhline(
        ACK_P99_MS, color="tab:red", linestyle=":", label=f"target: p99 < {ACK_P99_MS:.0f} ms"
    )
    verdicts = [
        f"{db}: p99 {points[-1].p99:.0f} ms {'met' if points[-1].p99 < ACK_P99_MS else 'MISSED'}"
        for (app, db), points in series.items()
        if app == "bot"
    ]
    ax.set_title("3. Ack time vs concurrent senders\n" + "; ".join(verdicts), fontsize=10)
    ax.set_xlabel("concurrent senders")
    ax.set_ylabel("HTTP response time (ms), log scale")
    ax.set_yscale("log")


def _growth(ax: Axes, ms: Sequence[Measurement], scenario: int, title: str, xlabel: str) -> None:
    series = _series(ms, scenario)
    if not series:
        return _not_run(ax, title)
    _lines(ax, series)
    verdicts = []
    for (_app, db), points in series.items():
        base = points[0].p50
        ax.axhspan(
            base * (1 - GROWTH), base * (1 + GROWTH), color=COLORS.get(db, "tab:green"), alpha=0.1
        )
        change = points[-1].p50 / base - 1
        verdicts.append(f"{db}: {change:+.0%} {'met' if abs(change) <= GROWTH else 'MISSED'}")
    ax.set_title(
        f"{title}\nshaded: target, p50 within ±{GROWTH:.0%} of the smallest size\n"
        + "; ".join(verdicts),
        fontsize=10,
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("click → answer (ms)")
    ax.set_ylim(bottom=0)


def _sustained(ax: Axes, ms: Sequence[Measurement]) -> None:
    title = "11. Mentions at a fixed rate: ack p99"
    rows = [m for m in ms if m.scenario == 11 and m.sustained is not None and m.x]
    if not rows:
        return _not_run(ax, title)
    series: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in rows:
        assert m.sustained is not None
        series.setdefault((m.app, m.db, m.sustained.senders), []).append(m)
    for (app, db, senders), points in series.items():
        points.sort(key=lambda m: m.x or 0)
        color = APP_COLORS.get(app) or COLORS.get(db, "tab:purple")
        style = "o-" if senders == 1 else "s--"
        who = "1 sender" if senders == 1 else f"{senders} at once"
        ax.plot(
            [m.x or 0 for m in points],
            [m.p99 for m in points],
            style,
            color=color,
            label=f"{_label(app, db)}, {who}",
        )
        for m in points:
            assert m.sustained is not None
            if m.sustained.grows:
                ax.annotate("backlog", (m.x or 0, m.p99), fontsize=7, color=color)
    ax.axhline(
        SUSTAINED_ACK_P99_MS,
        color="tab:red",
        linestyle=":",
        label=f"target: p99 < {SUSTAINED_ACK_P99_MS:.0f} ms",
    )
    ax.set_title(title + "\n(a rate failed is not tried higher)", fontsize=10)
    ax.set_xlabel("mentions per second")
    ax.set_ylabel("HTTP response time p99 (ms), log scale")
    ax.set_yscale("log")


def write_plot(path: Path, ms: Sequence[Measurement]) -> bool:
    """False, and no file, when none of scenarios 3 to 5 and 11 ran."""
    if not any(m.scenario in (3, 4, 5, 11) for m in ms):
        return False
    fig, axes = plt.subplots(1, 4, figsize=(22, 5.5))
    _acks(axes[0], ms)
    _growth(
        axes[1],
        ms,
        4,
        "4. Click → answer vs pending approvals",
        "pending approvals in the database",
    )
    _growth(axes[2], ms, 5, "5. Click → answer vs thread history", "earlier messages in the thread")
    if axes[2].has_data():
        limit = AgentConfig().history_limit
        axes[2].axvline(limit, color="tab:gray", linestyle=":", label=f"history_limit ({limit})")
    _sustained(axes[3], ms)
    for ax in axes:
        if ax.has_data():
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("threadgate benchmark: p50 solid, p99 dashed", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

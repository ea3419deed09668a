"""Scenario 9: what JSON logs and a scraped /metrics cost a mention.

One bot, one database, rounds that alternate: mentions with the default text logs, then
mentions with `LOG_FORMAT=json` and /metrics scraped after every one (far more often than
Prometheus would). Both log at INFO, formatted as the bot formats them, into /dev/null so the
terminal's speed does not count. Alternating rounds on the same bot keep drift (a database
that grows, a warmer cache) out of the ratio. The counters themselves cannot be switched off:
their cost is in both halves, and the per-mention cost of updating them is timed apart.
"""

import contextlib
import logging
import os
import time
from collections.abc import Iterator

from benchmarks.harness import Endpoint, Fakes
from benchmarks.results import Measurement
from benchmarks.scenarios import Plan, mention_once
from bot.log_redaction import LEVEL_FLOORS, configure_logging
from bot.metrics import Metrics
from bot.settings import DatabaseSettings

ROUND = 10  # mentions per half-round
TEXT_CASE = "mention → answer, text logs"
JSON_CASE = "mention → answer, JSON logs + /metrics"
# Slack calls one mention makes (status, thread read, post, reactions): each one is counted.
_SLACK_CALLS_PER_MENTION = 6


@contextlib.contextmanager
def logging_as(log_format: str) -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    floors = {name: logging.getLogger(name).level for name in LEVEL_FLOORS}
    settings = DatabaseSettings(_env_file=None, log_format=log_format, log_level="INFO")
    with open(os.devnull, "w", encoding="utf-8") as nowhere:
        configure_logging(settings, stream=nowhere)
        try:
            yield
        finally:
            root.handlers[:], _ = saved
            root.setLevel(saved[1])
            for name, level in floors.items():
                logging.getLogger(name).setLevel(level)


async def _scrape(endpoint: Endpoint) -> None:
    url = endpoint.url.removesuffix("/slack/events") + "/metrics"
    async with endpoint.http.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        await response.read()


async def scenario_operations(
    endpoint: Endpoint, fakes: Fakes, plan: Plan, db: str
) -> list[Measurement]:
    for _ in range(plan.warmup):
        await mention_once(endpoint, fakes)
    text: list[float] = []
    json: list[float] = []
    while len(json) < plan.mentions:
        count = min(ROUND, plan.mentions - len(json))
        with logging_as("text"):
            text += [await mention_once(endpoint, fakes) for _ in range(count)]
        with logging_as("json"):
            for _ in range(count):
                json.append(await mention_once(endpoint, fakes))
                await _scrape(endpoint)
    return [
        Measurement(9, TEXT_CASE, db, "bot", tuple(s * 1000 for s in text)),
        Measurement(9, JSON_CASE, db, "bot json+metrics", tuple(s * 1000 for s in json)),
        Measurement(9, "metric updates of one mention", db, "bot counters", (counter_cost(),)),
    ]


def counter_cost(repeat: int = 2000) -> float:
    """Milliseconds that the metric updates of one mention take (requests, ack, job, run start,
    run time, outcome, model call, Slack calls), timed on a fresh registry."""
    metrics = Metrics()
    started = time.perf_counter()
    for _ in range(repeat):
        metrics.requests.labels(kind="event_callback", status="200").inc()
        metrics.ack_seconds.observe(0.01)
        metrics.jobs_queued.labels(kind="message").inc()
        metrics.runs_started.labels(kind="start").inc()
        metrics.run_seconds.labels(kind="start").observe(0.02)
        metrics.ran("answered")
        metrics.model_call_seconds.labels(outcome="ok").observe(0.01)
        for _call in range(_SLACK_CALLS_PER_MENTION):
            metrics.slack_api_calls.labels(method="chat.postMessage", status="200").inc()
    return (time.perf_counter() - started) * 1000 / repeat

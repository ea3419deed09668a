"""Every Prometheus metric threadgate serves on `/metrics`, in one registry per app.

A registry of its own (not prometheus-client's global one) so that several bots in one process
(tests, benchmarks) never count into each other. Labels are bounded: tool names come from the
config, Slack methods from our own code, kinds and outcomes from fixed sets; never a user id, a
thread or anything anyone wrote.
"""

import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets in seconds: acks live under 3 s; runs and decisions take much longer.
FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0)
SLOW = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
HUMAN = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0)
PENDING_CACHE_SECONDS = 5.0

REQUEST_KINDS = frozenset(
    {
        "event_callback",
        "block_actions",
        "view_submission",
        "view_closed",
        "slash_command",
        "url_verification",
        "ssl_check",
        "shortcut",
        "message_action",
        "block_suggestion",
    }
)


def request_kind(payload_type: str | None) -> str:
    """A bounded label for a request: what Slack sent, or `other`/`unknown`."""
    if payload_type is None:
        return "unknown"
    return payload_type if payload_type in REQUEST_KINDS else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "threadgate_requests",
            "Slack requests on /slack/events by kind and HTTP status",
            ["kind", "status"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "threadgate_ack_seconds",
            "Time from receiving a Slack request to its response (the ack)",
            buckets=FAST,
            registry=r,
        )
        self.runs_started = Counter(
            "threadgate_runs_started",
            "Agent runs started (start) and resumed after decisions (resume)",
            ["kind"],
            registry=r,
        )
        self.runs = Counter(
            "threadgate_runs",
            "Agent runs ended or paused, by outcome (answered, paused, failed, interrupted)",
            ["outcome"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "threadgate_run_seconds",
            "Agent time of one start or resume, until it answers, pauses or fails",
            ["kind"],
            buckets=SLOW,
            registry=r,
        )
        self.model_call_seconds = Histogram(
            "threadgate_model_call_seconds",
            "Duration of one model call (the whole streamed response)",
            ["outcome"],
            buckets=SLOW,
            registry=r,
        )
        self.tool_calls = Counter(
            "threadgate_tool_calls",
            "Tool calls by tool and outcome (ok, error, not_run_again)",
            ["tool", "outcome"],
            registry=r,
        )
        self.approvals_pending = Gauge(
            "threadgate_approvals_pending",
            "Approval requests waiting for a decision, in the database (all processes)",
            registry=r,
        )
        self.approvals_requested = Counter(
            "threadgate_approvals_requested",
            "Approval requests posted, by tool",
            ["tool"],
            registry=r,
        )
        self.approval_decisions = Counter(
            "threadgate_approval_decisions",
            "Approval requests decided, by tool and decision (approved, rejected, expired)",
            ["tool", "decision"],
            registry=r,
        )
        self.approval_decision_seconds = Histogram(
            "threadgate_approval_decision_seconds",
            "Time from an approval request to its decision, by tool",
            ["tool"],
            buckets=HUMAN,
            registry=r,
        )
        self.approval_expiries = Counter(
            "threadgate_approval_expiries",
            "Approval requests that expired undecided",
            registry=r,
        )
        self.approval_reminders = Counter(
            "threadgate_approval_reminders",
            "Reminders posted about approval requests still waiting",
            registry=r,
        )
        self.approval_escalations = Counter(
            "threadgate_approval_escalations",
            "Approval requests escalated to further approvers",
            registry=r,
        )
        self.slack_api_calls = Counter(
            "threadgate_slack_api_calls",
            "Slack Web API attempts by method and HTTP status (each retry counts; error: no "
            "response)",
            ["method", "status"],
            registry=r,
        )
        self.jobs_queued = Counter(
            "threadgate_jobs_queued",
            "Jobs queued for a thread's worker (message, resume)",
            ["kind"],
            registry=r,
        )
        self.lease_takeovers = Counter(
            "threadgate_lease_takeovers",
            "Jobs taken over from a process that stopped renewing its lease",
            registry=r,
        )
        self.database_errors = Counter(
            "threadgate_database_errors",
            "Database transactions that failed because the database was unavailable",
            ["kind"],
            registry=r,
        )
        self._pending_read_at = -PENDING_CACHE_SECONDS

    def ran(self, outcome: str) -> None:
        self.runs.labels(outcome=outcome).inc()

    def requested(self, tools: Iterable[str]) -> None:
        for tool in tools:
            self.approvals_requested.labels(tool=tool).inc()
        self._pending_read_at = -PENDING_CACHE_SECONDS  # read again at the next scrape

    def decided(self, tool: str, decision: str, *, requested_at: datetime) -> None:
        self.approval_decisions.labels(tool=tool, decision=decision).inc()
        waited = (datetime.now(UTC) - _aware(requested_at)).total_seconds()
        self.approval_decision_seconds.labels(tool=tool).observe(max(waited, 0.0))
        if decision == "expired":
            self.approval_expiries.inc()
        self._pending_read_at = -PENDING_CACHE_SECONDS

    async def render(self, count_pending: Callable[[], Awaitable[int | None]]) -> bytes:
        """The text exposition; the pending gauge is read from the database at most every
        few seconds, so it is right across processes and a scrape storm costs one query."""
        now = time.monotonic()
        if now - self._pending_read_at >= PENDING_CACHE_SECONDS:
            self._pending_read_at = now
            pending = await count_pending()
            if pending is not None:
                self.approvals_pending.set(pending)
        return generate_latest(self.registry)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

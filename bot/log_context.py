"""The ids that tie a log line (and a span) to its work, carried by a context variable.

Set where work starts (a Slack request, a worker's job, a run, an approval click, a sweep);
every line logged beneath, in that task and the tasks it starts, carries them. Ids only: never
a message, an argument, a name.
"""

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

FIELDS = ("team", "channel", "thread_ts", "run_id", "approval_id", "job_id", "request_id")
_EMPTY: Mapping[str, str] = MappingProxyType({})
_ids: ContextVar[Mapping[str, str]] = ContextVar("threadgate_log_ids", default=_EMPTY)


def current() -> Mapping[str, str]:
    return _ids.get()


@contextlib.contextmanager
def bound(**ids: str | int | None) -> Iterator[None]:
    """Add these ids (those that are set) for the duration of the block."""
    added = {name: str(value) for name, value in ids.items() if value is not None and value != ""}
    token = _ids.set(MappingProxyType({**_ids.get(), **added}))
    try:
        yield
    finally:
        _ids.reset(token)


def thread_ids(thread_key: str) -> dict[str, str]:
    """team, channel and thread_ts of a thread key (`team:channel:thread_ts`)."""
    parts = thread_key.split(":", 2)
    if len(parts) != 3:
        return {}
    return {"team": parts[0], "channel": parts[1], "thread_ts": parts[2]}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class LogContext(logging.Filter):
    """Puts the current ids on each record (as `record.ids`) for the JSON formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ids = _ids.get()
        return True

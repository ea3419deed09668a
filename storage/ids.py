"""The ids threadgate makes and reads back from Slack, in one place.

A button's value and a modal's metadata are attacker-controlled: they carry only these ids,
and anything that does not have their exact shape is refused before it is looked up.
"""

import re
import secrets
import uuid
from dataclasses import dataclass

from storage.models import new_ref

__all__ = [
    "APPROVAL_ID",
    "RUN_ID",
    "THREAD_APPROVAL_ID",
    "ThreadRef",
    "new_approval_id",
    "new_ref",
    "new_run_id",
    "new_thread_approval_id",
]

APPROVAL_ID = re.compile(r"^ap_[A-Za-z0-9_-]{8,40}$")
RUN_ID = re.compile(r"^run_[0-9a-f]{32}$")
THREAD_APPROVAL_ID = re.compile(r"^ta_[A-Za-z0-9_-]{8,40}$")


def new_approval_id() -> str:
    """Opaque and unguessable: a button value is attacker-controlled, so ids must not be."""
    return "ap_" + secrets.token_urlsafe(18)


def new_thread_approval_id() -> str:
    """Opaque and unguessable, like an approval's: it is what a Revoke button carries."""
    return "ta_" + secrets.token_urlsafe(18)


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


@dataclass(frozen=True)
class ThreadRef:
    """A Slack thread, and its key in the database: team, channel and the thread's ts."""

    team_id: str
    channel_id: str
    thread_ts: str

    @property
    def key(self) -> str:
        return f"{self.team_id}:{self.channel_id}:{self.thread_ts}"

    @classmethod
    def from_key(cls, key: str) -> "ThreadRef":
        team_id, channel_id, thread_ts = key.split(":", 2)
        return cls(team_id, channel_id, thread_ts)

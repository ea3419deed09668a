"""Which workspace the work at hand is for, carried by the task that does it.

Every component keeps its one Slack client; what varies per unit of work is the workspace,
and asyncio hands it on to the tasks that work spawns. Each unit of work names its workspace
where it begins (a Slack request, a thread's queue, a delivery, an approval's decision), so a
task inherited from another workspace's request never speaks for it. With many workspaces a
call made outside any workspace carries no token and Slack refuses it: never a wrong token.
"""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from slack_bolt.context.async_context import AsyncBoltContext


@dataclass(frozen=True)
class Workspace:
    team_id: str | None  # None: a request to an org-wide install that names no workspace
    enterprise_id: str | None = None

    @property
    def known(self) -> bool:
        return self.team_id is not None or self.enterprise_id is not None


_current: ContextVar[Workspace | None] = ContextVar("threadgate_workspace", default=None)


def current() -> Workspace | None:
    return _current.get()


def current_team() -> str | None:
    workspace = _current.get()
    return workspace.team_id if workspace is not None else None


@contextmanager
def speaking_for(team_id: str | None, enterprise_id: str | None = None) -> Iterator[Workspace]:
    workspace = Workspace(team_id, enterprise_id)
    token = _current.set(workspace)
    try:
        yield workspace
    finally:
        _current.reset(token)


async def within_request_workspace(
    context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
) -> None:
    """Bolt middleware: a listener, and what it spawns, speaks for the request's workspace.

    Bolt runs the listener after its middleware returns, in the task that serves the request
    (one per request over HTTP and per envelope over Socket Mode): the workspace is set there
    and not reset, and every request sets its own first."""
    _current.set(Workspace(context.team_id, context.enterprise_id))
    await next()

"""Work that runs after Slack has its ack: tracked, logged, and drained on shutdown."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from storage.models import new_ref

__all__ = ["Background", "Spawn", "new_ref", "spawn_task"]

log = logging.getLogger(__name__)

# What starts work that nobody awaits: `Background.spawn`, or plain `spawn_task` where no
# Background is at hand. It returns the task, or None when it started nothing.
Spawn = Callable[..., "asyncio.Task[None] | None"]


def spawn_task(coro: Coroutine[Any, Any, None], *, name: str) -> "asyncio.Task[None] | None":
    return asyncio.create_task(coro, name=name)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None] | None:
        if not self.accepting:
            coro.close()
            log.warning("not starting %s: shutting down", name)
            return None
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "background task %s failed (ref %s)",
                task.get_name(),
                new_ref(),
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no task is left, including tasks started by tasks (tests rely on it)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, grace: float) -> bool:
        """Stop taking work, give running work `grace` seconds, cancel the rest."""
        self.accepting = False
        if not self._tasks:
            return True
        _done, not_done = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.wait(not_done, timeout=5)
        return not not_done

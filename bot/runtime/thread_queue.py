"""One worker at a time per thread, across processes, in the order the work arrived.

Work is rows in the `jobs` table. A process drains a thread only while it holds the thread's
lease, renewing it as it goes. Whoever queues a job then tries to take the lease; whoever
releases the lease looks again for queued jobs; so no job waits for a wake-up that never comes.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from bot import log_context
from bot.runtime.ack_first import AckFirst
from bot.runtime.background import Background, new_ref
from bot.slack.workspace_scope import speaking_for
from storage.database import UNAVAILABLE, Database
from storage.ids import ThreadRef
from storage.models import JobStatus
from storage.outbox import Owed
from storage.queue import (
    Step,
    finish_job,
    next_step_under_lease,
    release_thread_lease,
    renew_thread_lease,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_FIRST = 0.1  # seconds before a failed lease write is tried again; doubles each time
RETRY_LAST = 2.0

StepHandler = Callable[[Step], Awaitable[JobStatus]]


class ThreadQueue:
    def __init__(
        self,
        db: Database,
        background: Background,
        *,
        owner: str,
        lease: timedelta,
        history_limit: int | None,
        ack_first: AckFirst,
        history_limits: Mapping[str, int] | None = None,
        max_workers: int = 16,
    ) -> None:
        self.db = db
        self.background = background
        self.owner = owner
        self.lease = lease
        # The history window a run reads in the step that starts it.
        self.history_limit = history_limit
        # …or the one of the thread's workspace's own `[agent]`.
        self.history_limits = dict(history_limits or {})
        # Each step first lets the Slack requests in flight have their acks.
        self.ack_first = ack_first
        self.handler: StepHandler | None = None
        # What the thread is owed when a message is parked on a run that waits for approval.
        self.parked_note: Owed | None = None
        # Called when shutdown cancels a job mid-way, to record and report where it stopped.
        self.on_interrupted: Callable[[int], Awaitable[None]] | None = None
        self._draining: set[str] = set()
        self._workers = asyncio.Semaphore(max_workers)
        self._again: set[str] = set()

    def kick(self, thread_key: str) -> None:
        """Make sure somebody works on this thread soon; cheap to call too often."""
        if thread_key in self._draining:
            self._again.add(thread_key)
            return
        self._draining.add(thread_key)
        task = self.background.spawn(self._drain(thread_key), name=f"thread {thread_key}")
        if task is None:
            self._draining.discard(thread_key)

    async def _drain(self, thread_key: str) -> None:
        with speaking_for(ThreadRef.from_key(thread_key).team_id):
            await self._drain_thread(thread_key)

    async def _drain_thread(self, thread_key: str) -> None:
        try:
            # Threads beyond the cap wait their turn: their jobs are safe in the database, and
            # acks stay fast because a burst does not run everything at once on one loop.
            async with self._workers:
                while self.background.accepting:
                    self._again.discard(thread_key)
                    await self._work(thread_key)
                    if thread_key not in self._again:
                        return
        finally:
            self._draining.discard(thread_key)
            self._again.discard(thread_key)

    async def _work(self, thread_key: str) -> None:
        """Take jobs one at a time under the lease; each step is one transaction, which also
        starts the job's run. A lease that is lost stops the job: another process now reports
        it as interrupted, and it must not go on behind that report."""
        finished: tuple[int, JobStatus] | None = None
        lost = asyncio.Event()
        work = asyncio.current_task()
        assert work is not None
        renewer = asyncio.create_task(self._renew(thread_key, lost, work))
        try:
            while self.background.accepting:
                await self.ack_first.wait_quiet()
                step = await self._step(thread_key, finished)
                finished = None
                if step is None:
                    return  # the queue is empty (lease released) or another process has it
                assert step.job.id is not None
                status = await self._run(step, lost)
                if status != JobStatus.DEFERRED:
                    finished = (step.job.id, status)
        except asyncio.CancelledError:
            if lost.is_set():
                return  # the job is the new lease holder's to report; nothing more to record
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if finished is not None and not lost.is_set():
                await asyncio.shield(self._record_finished(*finished))
            if not self.background.accepting and not lost.is_set():
                await asyncio.shield(
                    release_thread_lease(self.db, thread_key=thread_key, owner=self.owner)
                )

    async def _step(self, thread_key: str, finished: tuple[int, JobStatus] | None) -> Step | None:
        """A step is one transaction: one that failed changed nothing and is tried again while
        the database is briefly away (a restart, a dropped connection)."""
        return await while_reachable(
            lambda: next_step_under_lease(
                self.db,
                thread_key=thread_key,
                owner=self.owner,
                ttl=self.lease,
                history_limit=self.history_limits.get(
                    ThreadRef.from_key(thread_key).team_id, self.history_limit
                ),
                finished=finished,
                parked_note=self.parked_note,
            ),
            until=time.monotonic() + self.lease.total_seconds(),
            what=f"a step of thread {thread_key}",
        )

    async def _record_finished(self, job_id: int, status: JobStatus) -> None:
        """A finished job must not look unfinished (and be reported interrupted): retry the
        write while the database is briefly away, for as long as the lease would last."""
        try:
            await while_reachable(
                lambda: finish_job(self.db, job_id=job_id, status=status),
                until=time.monotonic() + self.lease.total_seconds(),
                what=f"recording job {job_id}",
            )
        except UNAVAILABLE as exc:
            log.error("job %s finished but could not be recorded: %s", job_id, type(exc).__name__)

    async def _run(self, step: Step, lost: asyncio.Event) -> JobStatus:
        job = step.job
        assert job.id is not None
        assert self.handler is not None
        begun = step.run.run if step.run else step.resume.run if step.resume else None
        ids = log_context.thread_ids(job.thread_key)
        try:
            with log_context.bound(job_id=job.id, run_id=begun.id if begun else None, **ids):
                return await self.handler(step)
        except asyncio.CancelledError:
            if lost.is_set():
                log.warning(
                    "job %s of thread %s stopped: its lease was lost", job.id, job.thread_key
                )
            elif self.on_interrupted is not None:
                await asyncio.shield(self.on_interrupted(job.id))
            raise
        except Exception:
            log.exception("job %s of thread %s failed (ref %s)", job.id, job.thread_key, new_ref())
            return JobStatus.FAILED

    async def _renew(self, thread_key: str, lost: asyncio.Event, work: asyncio.Task[Any]) -> None:
        """Renew every third of the lease. A renewal that fails is tried again, sooner and
        sooner, until the lease would really lapse; then, or when another process holds the
        lease, the work is stopped."""
        interval = self.lease.total_seconds() / 3
        held_until = time.monotonic() + self.lease.total_seconds()
        while True:
            await asyncio.sleep(interval)
            renewed = await self._renew_once(thread_key, held_until)
            if not renewed:
                log.warning("lost the lease of thread %s; stopping its work", thread_key)
                lost.set()
                work.cancel()
                return
            held_until = time.monotonic() + self.lease.total_seconds()

    async def _renew_once(self, thread_key: str, held_until: float) -> bool:
        try:
            return await while_reachable(
                lambda: renew_thread_lease(
                    self.db, thread_key=thread_key, owner=self.owner, ttl=self.lease
                ),
                until=held_until,
                what=f"renewing the lease of thread {thread_key}",
            )
        except UNAVAILABLE:
            return False


async def while_reachable(call: Callable[[], Awaitable[T]], *, until: float, what: str) -> T:
    """`call` (one transaction), tried again with a growing pause while the database is away,
    until the monotonic time `until`; then its error is raised."""
    delay = RETRY_FIRST
    while True:
        try:
            return await call()
        except UNAVAILABLE as exc:
            if time.monotonic() + delay >= until:
                raise
            log.warning("%s failed (%s); trying again", what, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_LAST)

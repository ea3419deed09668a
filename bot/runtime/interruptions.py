"""Runs whose process stopped half-way: told to the thread, with a Retry button.

Two ways in: this process is shutting down and its drain timeout cancelled a job, or the
sweeper found a running job whose thread lease expired because its process died. Either way
the job is failed and its run marked interrupted in one transaction, the thread is told what
was in flight, and nothing is re-run until a person presses Retry.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.approvals.approvals import Approvals
from bot.metrics import Metrics
from bot.runtime import outbox as owed
from bot.runtime.outbox import Outbox
from bot.slack import blocks
from bot.slack.replies import ThreadReplies
from storage.database import Database
from storage.ids import ThreadRef
from storage.recovery import (
    Interrupted,
    RetryOutcome,
    interrupt_job,
    recover_orphaned_jobs,
    retry_run,
)
from storage.runs import get_run, requesters_of

log = logging.getLogger(__name__)

STOPPED = "I was stopped (a restart or deploy)"
DIED = "The process working on this stopped unexpectedly"


@dataclass(frozen=True)
class RetryClick:
    run_id: str
    user_id: str
    team_id: str
    channel_id: str
    message_ts: str | None


class Interruptions:
    def __init__(
        self,
        db: Database,
        *,
        replies: ThreadReplies,
        approvals: Approvals,
        outbox: Outbox,
        kick: Callable[[str], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.db = db
        self.replies = replies
        self.approvals = approvals
        self.outbox = outbox
        self.kick = kick

    async def stopped(self, job_id: int) -> None:
        """Shutdown cancelled this job: record where it stopped; the thread is owed a note."""
        interrupted = await interrupt_job(
            self.db, job_id=job_id, cause=STOPPED, by=self.outbox.claimant
        )
        if interrupted is not None:
            await self._reported(interrupted)

    async def recover(self) -> int:
        """Take over jobs of processes that died; the threads go on with their next work."""
        found = await recover_orphaned_jobs(self.db, cause=DIED, by=self.outbox.claimant)
        self.metrics.lease_takeovers.inc(len(found))
        for interrupted in found:
            await self._reported(interrupted)
            self.kick(interrupted.job.thread_key)
        return len(found)

    async def _reported(self, interrupted: Interrupted) -> None:
        run = interrupted.run
        if run is None:
            return  # nothing had started: the message simply waits for its turn again
        self.metrics.ran("interrupted")
        log.warning("run %s interrupted (ref %s)", run.id, run.error_ref)
        await self.outbox.deliver(run.thread_key)

    async def retry(self, click: RetryClick) -> None:
        run = await get_run(self.db, click.run_id)
        thread = ThreadRef.from_key(run.thread_key) if run else None
        if (
            run is None
            or thread is None
            or (thread.team_id, thread.channel_id)
            != (
                click.team_id,
                click.channel_id,
            )
        ):
            await self._tell(click, None, "I can't find that run here.")
            return
        if click.user_id not in requesters_of(run) and not await self.approvals.is_approver(
            click.user_id
        ):
            await self._tell(
                click, thread.thread_ts, "Only a person who asked or an approver can retry it."
            )
            return
        mention = blocks.mention(click.user_id)
        retried = (
            [owed.replace(click.message_ts, *blocks.plain(f":repeat: Retried by {mention}."))]
            if click.message_ts
            else []
        )
        outcome, _ = await retry_run(self.db, run_id=run.id, owed=retried, by=self.outbox.claimant)
        if outcome != RetryOutcome.QUEUED:
            await self._tell(click, thread.thread_ts, "This run was already retried.")
            return
        await self.outbox.deliver(run.thread_key)
        self.kick(run.thread_key)

    async def _tell(self, click: RetryClick, thread_ts: str | None, text: str) -> None:
        await self.replies.private(
            channel=click.channel_id, user=click.user_id, thread_ts=thread_ts, text=text
        )

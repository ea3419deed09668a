"""Runs whose process stopped half-way: told to the thread, with a Retry button.

Two ways in: this process is shutting down and its drain timeout cancelled a job, or the
sweeper found a running job whose thread lease expired because its process died. Either way
the job is failed and its run marked interrupted in one transaction, the thread is told what
was in flight, and nothing is re-run until a person presses Retry.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.approvals import Approvals, requesters_of
from bot.runtime.background import new_ref
from bot.slack import blocks
from bot.slack.replies import ThreadReplies
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import JobKind
from storage.recovery import (
    Interrupted,
    RetryOutcome,
    interrupt_job,
    recover_orphaned_jobs,
    retry_run,
)
from storage.runs import get_run

log = logging.getLogger(__name__)


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
        client: AsyncWebClient,
        replies: ThreadReplies,
        approvals: Approvals,
        kick: Callable[[str], None],
    ) -> None:
        self.db = db
        self.client = client
        self.replies = replies
        self.approvals = approvals
        self.kick = kick

    async def stopped(self, job_id: int) -> None:
        """Shutdown cancelled this job: record where it stopped and say so."""
        interrupted = await interrupt_job(self.db, job_id=job_id)
        if interrupted is not None:
            await self.report(interrupted, "I was stopped (a restart or deploy)")

    async def recover(self) -> int:
        """Take over jobs of processes that died; the threads go on with their next work."""
        found = await recover_orphaned_jobs(self.db)
        for interrupted in found:
            await self.report(interrupted, "The process working on this stopped unexpectedly")
            self.kick(interrupted.job.thread_key)
        return len(found)

    async def report(self, interrupted: Interrupted, cause: str) -> None:
        run = interrupted.run
        if run is None:
            return  # nothing had started: the message simply waits for its turn again
        ref = run.error_ref or new_ref()
        doing = (
            "while resuming after an approval"
            if interrupted.job.kind == JobKind.RESUME
            else "while answering"
        )
        log.warning("run %s interrupted %s (ref %s)", run.id, doing, ref)
        text, body = blocks.interrupted_note(
            run_id=run.id,
            what=f"{cause} {doing}, so this run did not finish.",
            in_flight=[
                blocks.InFlightCall(tool_name=a.tool_name, arguments=a.arguments)
                for a in interrupted.in_flight
            ],
            ref=ref,
            can_retry=True,
        )
        thread = ThreadRef.from_key(run.thread_key)
        try:
            await self.client.chat_postMessage(
                channel=thread.channel_id, thread_ts=thread.thread_ts, text=text, blocks=body
            )
        except SlackApiError as exc:
            log.warning("could not report run %s: %s", run.id, exc.response.get("error"))

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
        outcome, _ = await retry_run(self.db, run_id=run.id)
        if outcome != RetryOutcome.QUEUED:
            await self._tell(click, thread.thread_ts, "This run was already retried.")
            return
        if click.message_ts:
            text, body = blocks.plain(f":repeat: Retried by {blocks.mention(click.user_id)}.")
            try:
                await self.client.chat_update(
                    channel=click.channel_id, ts=click.message_ts, text=text, blocks=body
                )
            except SlackApiError as exc:
                log.warning("could not update the retry note: %s", exc.response.get("error"))
        self.kick(run.thread_key)

    async def _tell(self, click: RetryClick, thread_ts: str | None, text: str) -> None:
        await self.replies.private(
            channel=click.channel_id, user=click.user_id, thread_ts=thread_ts, text=text
        )

"""A thread's worker: the job its step started, run to the end or to a pause, then settled.

The thread queue hands each started job here (`handle`). A message starts a run on the
thread's history; a resume applies the stored decisions to the paused state and goes on.
Either way the outcome is settled the same way: an answer finishes the run, a pause stores
its state with one approval per call and posts the cards. Failures end the run visibly,
with a reference id, and never run a decided call again.
"""

import logging
from collections.abc import Sequence

from bot.agent.runs import AgentRuns, RunOutcome, StateLoadError, thread_context
from bot.approvals.approvals import Approvals
from bot.runtime import outbox as owed
from bot.runtime.background import new_ref
from bot.runtime.outbox import Outbox
from bot.runtime.thread_context import ThreadContextReader
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import ApprovalStatus, Job, JobKind, JobStatus, Run, RunStatus
from storage.outbox import Owed
from storage.queue import Step, finish_job, requeue_jobs
from storage.runs import BegunResume, BegunRun, finish_run

log = logging.getLogger(__name__)

PARKED_NOTE = owed.note(
    ":hourglass_flowing_sand: I'm waiting for approval of a tool call in this thread. "
    "I'll read your message as soon as it is decided."
)


class ThreadWorker:
    def __init__(
        self,
        db: Database,
        *,
        runs: AgentRuns,
        approvals: Approvals,
        outbox: Outbox,
        context_reader: ThreadContextReader,
    ) -> None:
        self.db = db
        self.runs = runs
        self.approvals = approvals
        self.outbox = outbox
        self.context_reader = context_reader

    async def handle(self, step: Step) -> JobStatus:
        if step.job.kind == JobKind.RESUME:
            return await self.resume(step.job, step.resume)
        assert step.run is not None
        return await self.start(step.job, step.run)

    async def start(self, job: Job, begun: BegunRun) -> JobStatus:
        """`begun` is the run that the step started for the message (or parked it on)."""
        thread = ThreadRef.from_key(job.thread_key)
        if begun.parked:
            await self.outbox.deliver(job.thread_key)  # the step stored PARKED_NOTE
            return JobStatus.DEFERRED
        run = begun.run
        history = self.runs.history(job.thread_key, stored=begun.history)
        try:
            # Earlier messages and files of the thread; their authors become requesters first.
            context_items = await self.context_reader.read(job, run.id)
            outcome = await self.runs.start(
                job.text or "",
                history=history,
                context_items=context_items,
                context=thread_context(
                    run_id=run.id,
                    team_id=thread.team_id,
                    channel_id=thread.channel_id,
                    thread_ts=thread.thread_ts,
                    user_id=job.user_id or "unknown",
                ),
            )
        except Exception:
            ref = new_ref()
            log.exception("run %s failed (ref %s)", run.id, ref)
            await finish_run(
                self.db,
                run_id=run.id,
                status=RunStatus.FAILED,
                error_ref=ref,
                new_history=history.new_rows(),
                owed=[owed.failure("Sorry, I couldn't answer that.", ref)],
                by=self.outbox.claimant,
            )
            await self.outbox.deliver(job.thread_key)
            return JobStatus.FAILED
        await self.settle(run, thread, outcome, history.new_rows())
        return JobStatus.DONE

    async def resume(self, job: Job, begun: BegunResume | None) -> JobStatus:
        """`begun` is the run that the step claimed for the job, if it was first."""
        if begun is None:
            return JobStatus.DONE  # already resumed by somebody else
        run, approvals, deferred = begun.run, begun.approvals, begun.deferred
        thread = ThreadRef.from_key(job.thread_key)
        if run.state is None:
            await self._resume_failed(run, thread, deferred, "The paused run is gone")
            return JobStatus.FAILED
        decisions = {a.call_id: self.approvals.decision_for(a) for a in approvals}
        history = self.runs.history(job.thread_key, stored=begun.history)
        try:
            outcome, refused = await self.runs.resume(
                run.state,
                decisions=decisions,
                new_messages=[message.text or "" for message in deferred],
                history=history,
            )
        except StateLoadError as exc:
            await self._resume_failed(run, thread, deferred, f"I couldn't resume the run: {exc}")
            return JobStatus.FAILED
        except Exception:
            await self._resume_failed(
                run, thread, deferred, "The run failed after the decision", history.new_rows()
            )
            return JobStatus.FAILED
        for index, message in enumerate(deferred):
            assert message.id is not None
            if index not in refused:
                await finish_job(self.db, job_id=message.id, status=JobStatus.DONE)
        await requeue_jobs(self.db, job_ids=[deferred[i].id or 0 for i in refused])
        # The answer goes out first; the cards of the calls that ran then show their output.
        ran = [owed.card(a.id) for a in approvals if a.status == ApprovalStatus.APPROVED]
        await self.settle(run, thread, outcome, history.new_rows(), then=ran)
        return JobStatus.DONE

    async def settle(
        self,
        run: Run,
        thread: ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
        *,
        then: Sequence[Owed] = (),
    ) -> None:
        """Answer in the thread, or store the pause and post one request per call; the run's
        new history items, and what it owes the thread (`then` after its own message), are
        stored with either."""
        if outcome.pending and outcome.saved is not None:
            await self.approvals.request(run, thread, outcome, new_history, before=then)
            return
        if await finish_run(
            self.db,
            run_id=run.id,
            status=RunStatus.COMPLETED,
            new_history=new_history,
            owed=[owed.answer(outcome.final_text or ""), *then],
            by=self.outbox.claimant,
        ):
            await self.outbox.deliver(thread.key)
        else:
            log.warning("run %s finished after it was marked interrupted", run.id)

    async def _resume_failed(
        self,
        run: Run,
        thread: ThreadRef,
        deferred: list[Job],
        what: str,
        new_history: Sequence[str] = (),
    ) -> None:
        """The decisions stay on record and the run ends; nothing that ran is run again."""
        ref = new_ref()
        log.error("resume of run %s failed (ref %s)", run.id, ref, exc_info=True)
        await finish_run(
            self.db,
            run_id=run.id,
            status=RunStatus.FAILED,
            error_ref=ref,
            new_history=new_history,
            owed=[owed.failure(f"{what}; the run has stopped.", ref)],
            by=self.outbox.claimant,
        )
        await requeue_jobs(self.db, job_ids=[job.id for job in deferred if job.id])
        await self.outbox.deliver(thread.key)

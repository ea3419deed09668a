"""The console's worker: the thread queue hands it each step, as it hands Slack's worker.

A message starts a run on the conversation's history; a run that pauses is stored with its
approvals exactly as in Slack, and the person at the console decides each call at once, which
queues the resume the queue hands back here. What Slack would be sent (the answer, the cards
and their updates) is shown in the terminal instead, so what the thread is owed is marked
delivered here.
"""

from collections.abc import Sequence

from bot.agent.failures import describe, logged_stop, turn_limit_note
from bot.agent.runs import AgentRuns, RunOutcome, StateLoadError, thread_context
from bot.approvals.approvals import call_decision
from bot.approvals.deciding import CallPolicies
from bot.approvals.pausing import store_pause
from bot.console.approver import ConsoleApprover
from bot.console.terminal import Terminal
from storage import outbox
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import Job, JobKind, JobStatus, Run, RunStatus
from storage.outbox import Claimant
from storage.queue import Step, requeue_jobs
from storage.runs import BegunResume, BegunRun, finish_run


class ConsoleWorker:
    def __init__(
        self,
        db: Database,
        *,
        runs: AgentRuns,
        policies: CallPolicies,
        approver: ConsoleApprover,
        terminal: Terminal,
        by: Claimant,
    ) -> None:
        self.db = db
        self.runs = runs
        self.policies = policies
        self.approver = approver
        self.terminal = terminal
        self.by = by

    async def handle(self, step: Step) -> JobStatus:
        if step.job.kind == JobKind.RESUME:
            return await self._resume(step.resume)
        assert step.run is not None
        return await self._start(step.job, step.run)

    async def _start(self, job: Job, begun: BegunRun) -> JobStatus:
        if begun.parked:  # a run of this conversation still waits for a decision
            self.terminal.say("A call still waits for a decision; this message waits with it.")
            return JobStatus.DEFERRED
        run, thread = begun.run, ThreadRef.from_key(job.thread_key)
        history = self.runs.history(job.thread_key, stored=begun.history)
        try:
            outcome = await self.runs.start(
                job.text or "",
                history=history,
                context=thread_context(thread, run_id=run.id, user_id=run.requested_by),
            )
        except Exception as exc:
            await self._failed(run, exc, history.new_rows())
            return JobStatus.FAILED
        await self._settle(run, thread, outcome, history.new_rows())
        return JobStatus.DONE

    async def _resume(self, begun: BegunResume | None) -> JobStatus:
        if begun is None:
            return JobStatus.DONE  # another process resumed it
        run = begun.run
        await requeue_jobs(self.db, job_ids=[job.id for job in begun.deferred if job.id])
        history = self.runs.history(run.thread_key, stored=begun.history)
        policy = self.policies.policy
        try:
            if run.state is None:
                raise StateLoadError("the paused run is gone")
            outcome, _refused = await self.runs.resume(
                run.state,
                decisions={a.call_id: call_decision(a, policy) for a in begun.approvals},
                new_messages=[],
                history=history,
            )
        except Exception as exc:
            await self._failed(run, exc, history.new_rows())
            return JobStatus.FAILED
        await self._settle(run, ThreadRef.from_key(run.thread_key), outcome, history.new_rows())
        return JobStatus.DONE

    async def _settle(
        self, run: Run, thread: ThreadRef, outcome: RunOutcome, new_history: Sequence[str]
    ) -> None:
        """Answer, or store the pause and ask about each call; a decision queues the resume."""
        if outcome.pending and outcome.saved is not None:
            paused = await store_pause(
                self.db,
                self.policies,
                run=run,
                thread=thread,
                outcome=outcome,
                new_history=new_history,
                owed=(),
                by=self.by,
            )
            if paused is None:
                return
            for approval in paused.approvals:
                if not await self.approver.ask(approval):
                    break
            await self._shown(thread.key)
            return
        if outcome.turn_limit is not None:
            text = turn_limit_note(outcome.turn_limit)
        else:
            text = outcome.final_text or ""
        await finish_run(
            self.db, run_id=run.id, status=RunStatus.COMPLETED, new_history=new_history
        )
        self.terminal.say(text)

    async def _failed(self, run: Run, exc: Exception, new_history: Sequence[str]) -> None:
        """The run ends as failed, with a reference id; the conversation goes on."""
        if isinstance(exc, StateLoadError):
            what, expected = f"I couldn't resume the run: {exc}", True
        else:
            failure = describe(exc)
            what, expected = failure.what, failure.expected
        ref = logged_stop(run.id, type(exc).__name__, expected=expected)
        await finish_run(
            self.db,
            run_id=run.id,
            status=RunStatus.FAILED,
            error_ref=ref,
            new_history=new_history,
        )
        self.terminal.say(f"error: {what} (reference {ref})")

    async def _shown(self, thread_key: str) -> None:
        """What the conversation is owed (its cards, their new looks, a note) was shown in
        the terminal, which is its only surface: nobody is to send it to Slack."""
        while owed := await outbox.claim(self.db, thread_key=thread_key, by=self.by):
            # A card's later looks are claimed once its first is done with.
            for delivery in owed:
                await outbox.delivered(self.db, delivery=delivery, by=self.by, message_ts=None)

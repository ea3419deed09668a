"""A thread's worker: the job its step started, run to the end or to a pause, then settled.

The thread queue hands each started job here (`handle`). A message starts a run on the
thread's history; a resume applies the stored decisions to the paused state and goes on.
Either way the outcome is settled the same way: an answer finishes the run, a pause stores
its state with one approval per call and posts the cards. Failures end the run visibly,
with a reference id, and never run a decided call again.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from bot.agent.agents_by_team import AgentsByTeam
from bot.agent.failures import describe, logged_stop, turn_limit_note
from bot.agent.runs import RunOutcome, StateLoadError, thread_context
from bot.approvals.approvals import Approvals
from bot.metrics import Metrics
from bot.runtime import outbox as owed
from bot.runtime.outbox import Outbox
from bot.runtime.thread_context import ThreadContextReader
from bot.slack import thread_signs
from bot.slack.blocks import Block
from bot.slack.live_answer import Leftover, LiveAnswer, LiveSurfaces
from bot.slack.thread_signs import ThreadSigns
from bot.tracing import Tracing
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import ApprovalStatus, Job, JobKind, JobStatus, Run, RunStatus
from storage.outbox import Owed, card_of
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
        runs: AgentsByTeam,
        approvals: Approvals,
        outbox: Outbox,
        signs: ThreadSigns,
        context_reader: ThreadContextReader,
        feedback: Callable[[str], Sequence[Block]],
        stream: bool = True,
        stream_by_team: Mapping[str, bool] | None = None,
        pace: float | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing()
        self.db = db
        self.runs = runs
        self.approvals = approvals
        self.outbox = outbox
        self.signs = signs
        self.context_reader = context_reader
        self.feedback = feedback
        self.surfaces = LiveSurfaces(stream=stream, by_team=stream_by_team)
        self.pace = pace

    def _live(self, thread: ThreadRef, recipient: str | None) -> LiveAnswer:
        extra = {} if self.pace is None else {"pace": self.pace}
        return LiveAnswer(
            self.outbox.client,
            thread,
            recipient_user_id=recipient,
            surfaces=self.surfaces,
            on_tool=lambda name: self._signal(thread, thread_signs.running(name)),
            **extra,
        )

    def _signal(self, thread: ThreadRef, status: str, *, loading: Sequence[str] = ()) -> None:
        """A status change the run does not wait for; `_signalled` waits for the thread's
        before its last word on its status, so a late one cannot undo it."""
        self.signs.signal(thread, status, loading=loading)

    async def _signalled(self, thread: ThreadRef) -> None:
        await self.signs.settled(thread)

    @contextlib.contextmanager
    def _running(self, kind: str, run_id: str) -> Iterator[None]:
        """One start or resume of the agent: counted, timed, and the span its model and tool
        calls (and the SDK's spans) hang under."""
        self.metrics.runs_started.labels(kind=kind).inc()
        log.info("run %s: %s", run_id, kind)
        started = time.perf_counter()
        try:
            with self.tracing.span("threadgate.run", kind=kind):
                yield
        finally:
            self.metrics.run_seconds.labels(kind=kind).observe(time.perf_counter() - started)

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
            await self.signs.unreact(thread, message_ts=job.message_ts)
            return JobStatus.DEFERRED
        run = begun.run
        runs = self.runs.runs_for(thread.team_id)
        history = runs.history(job.thread_key, stored=begun.history)
        live = self._live(thread, job.user_id)
        try:
            with self._running("start", run.id):
                # Earlier messages and files of the thread; their authors become requesters.
                context_items = await self.context_reader.read(job, run.id)
                outcome = await runs.start(
                    job.text or "",
                    history=history,
                    context_items=context_items,
                    context=thread_context(thread, run_id=run.id, user_id=job.user_id or "unknown"),
                    observer=live,
                    streamed=live.live,
                )
        except Exception as exc:
            await self._failed(run, thread, exc, await live.abort(), history.new_rows())
            await self._signalled(thread)
            await self.signs.clear(thread, message_ts=job.message_ts)
            return JobStatus.FAILED
        cleared_by_reply = self._reply_clears_status(thread, live)
        await self.settle(run, thread, outcome, history.new_rows(), live=live)
        await self._signalled(thread)
        if outcome.pending or cleared_by_reply:
            await self.signs.unreact(thread, message_ts=job.message_ts)
        else:
            await self.signs.clear(thread, message_ts=job.message_ts)
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
        # The workspace's own agent: the one the state was paused with, by its name.
        runs = self.runs.runs_for(thread.team_id)
        history = runs.history(job.thread_key, stored=begun.history)
        # Shown while the run goes on: the resume does not wait for Slack to take it.
        self._signal(thread, thread_signs.THINKING, loading=thread_signs.THINKING_MESSAGES)
        live = self._live(thread, run.requested_by)
        for approval in approvals:
            if approval.status == ApprovalStatus.APPROVED:
                live.expect(approval.call_id, approval.tool_name)
            else:
                live.rejected(approval.call_id, approval.tool_name)
        try:
            with self._running("resume", run.id):
                outcome, refused = await runs.resume(
                    run.state,
                    decisions=decisions,
                    new_messages=[message.text or "" for message in deferred],
                    history=history,
                    observer=live,
                    run_id=run.id,
                    streamed=live.live,
                )
        except StateLoadError as exc:
            await self._resume_failed(
                run,
                thread,
                deferred,
                f"I couldn't resume the run: {exc}",
                leftover=await live.abort(),
            )
            return JobStatus.FAILED
        except Exception as exc:
            failure = describe(exc)
            await self._resume_failed(
                run,
                thread,
                deferred,
                failure.what if failure.expected else "The run failed after the decision",
                history.new_rows(),
                leftover=await live.abort(),
                expected=failure.expected,
            )
            return JobStatus.FAILED
        for index, message in enumerate(deferred):
            assert message.id is not None
            if index not in refused:
                await finish_job(self.db, job_id=message.id, status=JobStatus.DONE)
        await requeue_jobs(self.db, job_ids=[deferred[i].id or 0 for i in refused])
        # The answer goes out first; the cards of the calls that ran then show their output.
        ran = [card_of(a) for a in approvals if a.status == ApprovalStatus.APPROVED]
        cleared_by_reply = self._reply_clears_status(thread, live)
        await self.settle(run, thread, outcome, history.new_rows(), then=ran, live=live)
        await self._signalled(thread)
        if not outcome.pending and not cleared_by_reply:
            await self.signs.clear(thread, message_ts=None)
        return JobStatus.DONE

    def _reply_clears_status(self, thread: ThreadRef, live: LiveAnswer) -> bool:
        """Called once the run is over, before its reply is posted: Slack clears the status
        when the app replies, so an answer posted whole needs no clearing of its own, unless
        a status call is still on its way (it could land after the reply and stay). The run
        signals no status after this point. A streamed answer is cleared as before."""
        return not live.live and not self.signs.pending(thread)

    async def settle(
        self,
        run: Run,
        thread: ThreadRef,
        outcome: RunOutcome,
        new_history: Sequence[str],
        *,
        then: Sequence[Owed] = (),
        live: LiveAnswer,
    ) -> None:
        """Answer in the thread, or store the pause and post one request per call; the run's
        new history items, and what it owes the thread (`then` after its own message), are
        stored with either. What the live view showed is not owed again."""
        if outcome.pending and outcome.saved is not None:
            leftover = await live.pause([(c.call_id, c.tool_name) for c in outcome.pending])
            decided = await self.approvals.request(
                run, thread, outcome, new_history, before=[*_owed_text(leftover), *then]
            )
            await self._signalled(thread)
            if decided:
                self.metrics.ran("paused")
                log.info("run %s paused on %d call(s)", run.id, len(decided))
            approvers = list(dict.fromkeys(a for call in decided for a in call.approvers))
            await self.signs.show(
                thread,
                thread_signs.waiting(await self.signs.names(approvers)),
                message_ts=None,
            )
            return
        if outcome.turn_limit is not None:
            leftover = await live.finish(None, feedback=())
            said = [*_owed_text(leftover), owed.note(turn_limit_note(outcome.turn_limit))]
            log.info("run %s stopped at its limit of %d turns", run.id, outcome.turn_limit)
        else:
            leftover = await live.finish(outcome.final_text, feedback=self.feedback(run.id))
            said = _owed_text(leftover, answer=True, feedback=self.feedback(run.id))
        owed_now = [*said, *then]
        finished = await self.outbox.after(
            thread.key,
            lambda by: finish_run(
                self.db,
                run_id=run.id,
                status=RunStatus.COMPLETED,
                new_history=new_history,
                owed=owed_now,
                by=by,
                claim=True,
            ),
        )
        if finished is not None:
            self.metrics.ran("answered")
            log.info("run %s answered", run.id)
        else:
            log.warning("run %s finished after it was marked interrupted", run.id)

    async def _failed(
        self,
        run: Run,
        thread: ThreadRef,
        exc: Exception,
        leftover: Leftover,
        new_history: Sequence[str],
    ) -> None:
        failure = describe(exc)
        await self._stop(
            run,
            thread,
            failure.what,
            new_history,
            leftover=leftover,
            expected=failure.expected,
            cause=type(exc).__name__,
        )
        await self.outbox.deliver(thread.key)

    async def _resume_failed(
        self,
        run: Run,
        thread: ThreadRef,
        deferred: list[Job],
        what: str,
        new_history: Sequence[str] = (),
        *,
        leftover: Leftover | None = None,
        expected: bool = False,
    ) -> None:
        """The decisions stay on record and the run ends; nothing that ran is run again."""
        await self._signalled(thread)
        await self._stop(
            run,
            thread,
            f"{what}; the run has stopped.",
            new_history,
            leftover=leftover,
            expected=expected,
            cause="resume",
        )
        await requeue_jobs(self.db, job_ids=[job.id for job in deferred if job.id])
        await self.outbox.deliver(thread.key)

    async def _stop(
        self,
        run: Run,
        thread: ThreadRef,
        what: str,
        new_history: Sequence[str],
        *,
        leftover: Leftover | None,
        expected: bool,
        cause: str,
    ) -> None:
        """End the run as failed, with what it showed so far and a note with a reference id
        (call it from the handler, for the log to have the traceback)."""
        ref = logged_stop(run.id, cause, expected=expected)
        self.metrics.ran("failed")
        await finish_run(
            self.db,
            run_id=run.id,
            status=RunStatus.FAILED,
            error_ref=ref,
            new_history=new_history,
            owed=[*(_owed_text(leftover) if leftover else []), owed.failure(what, ref)],
            by=self.outbox.claimant,
        )


def _owed_text(
    leftover: Leftover, *, answer: bool = False, feedback: Sequence[Block] = ()
) -> list[Owed]:
    """What the live view could not show, owed through the outbox; a final answer nobody saw
    any of is owed whole, even when empty."""
    if leftover.text or (answer and not leftover.shown_any):
        return owed.answer(leftover.text, feedback=feedback if leftover.feedback else ())
    if leftover.feedback and feedback:
        return [owed.post("Was this answer helpful?", list(feedback))]
    return []

"""A Slack thread is one conversation: its messages queue up and are answered one at a time."""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.approvals import Approvals
from bot.background import new_ref
from bot.runs import AgentRuns, thread_context
from bot.thread_replies import ThreadReplies
from storage import repositories as repo
from storage.database import Database
from storage.inbox import Inbox
from storage.models import Job, JobStatus, RunStatus

log = logging.getLogger(__name__)

WAITING_NOTE = (
    ":hourglass_flowing_sand: I'm waiting for approval of a tool call in this thread. "
    "I'll read your message as soon as it is decided."
)


@dataclass(frozen=True)
class IncomingMessage:
    event_id: str
    team_id: str
    channel_id: str
    user_id: str
    ts: str
    thread_ts: str | None
    text: str
    addressed_to_bot: bool

    @property
    def thread(self) -> repo.ThreadRef:
        return repo.ThreadRef(self.team_id, self.channel_id, self.thread_ts or self.ts)


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()


class Conversations:
    def __init__(
        self,
        db: Database,
        *,
        runs: AgentRuns,
        approvals: Approvals,
        replies: ThreadReplies,
        kick: Callable[[str], None],
    ) -> None:
        self.db = db
        self.inbox = Inbox(db)
        self.runs = runs
        self.approvals = approvals
        self.replies = replies
        self.kick = kick

    async def receive(self, message: IncomingMessage) -> repo.Accepted:
        """Store the message before Slack gets its ack, so an ack never outlives a crash."""
        thread = message.thread
        accepted = await self.inbox.accept(
            repo.IncomingRow(
                event_id=message.event_id,
                thread=thread,
                user_id=message.user_id,
                message_ts=message.ts,
                text=message.text,
                only_known_thread=not message.addressed_to_bot,
            )
        )
        if accepted == repo.Accepted.QUEUED:
            self.kick(thread.key)
        return accepted

    async def handle_message(self, job: Job, begun: repo.BegunRun) -> JobStatus:
        """`begun` is the run that the worker's step started for the job (or parked it on)."""
        thread = repo.ThreadRef.from_key(job.thread_key)
        user = job.user_id or "unknown"
        if begun.parked:
            await self.replies.note(thread, WAITING_NOTE)
            return JobStatus.DEFERRED
        run = begun.run
        history = self.runs.history(job.thread_key, stored=begun.history)
        try:
            outcome = await self.runs.start(
                job.text or "",
                history=history,
                context=thread_context(
                    run_id=run.id,
                    team_id=thread.team_id,
                    channel_id=thread.channel_id,
                    thread_ts=thread.thread_ts,
                    user_id=user,
                ),
            )
        except Exception:
            ref = new_ref()
            log.exception("run %s failed (ref %s)", run.id, ref)
            await repo.finish_run(
                self.db,
                run_id=run.id,
                status=RunStatus.FAILED,
                error_ref=ref,
                new_history=history.new_rows(),
            )
            await self.replies.failure(thread, "Sorry, I couldn't answer that.", ref)
            return JobStatus.FAILED
        await self.approvals.settle(run, thread, outcome, history.new_rows())
        return JobStatus.DONE

"""A starting run's view of its thread beyond its history, and who that makes a requester.

The database says where the bot's record of the thread ends (the newest message it already
took); the thread reader (bot.slack.thread_reader) reads what people wrote after it. The
authors of what is read become requesters of the run before the run can pause, so every
approval it asks for names them and the self-approval rule holds them too.

A thread's first message (a top-level mention, a DM) has nothing before it: its run asks the
database nothing, and asks Slack nothing either when the message's event carried no files
(`jobs.has_files` false; unknown, as for jobs stored before it was recorded, reads).
"""

from collections.abc import Mapping
from typing import Any

from bot.slack.thread_reader import ThreadReader
from storage.database import Database
from storage.ids import ThreadRef
from storage.messages import newest_message_taken
from storage.models import Job
from storage.runs import add_requesters


class ThreadContextReader:
    def __init__(
        self, db: Database, reader: ThreadReader, by_team: Mapping[str, ThreadReader] | None = None
    ) -> None:
        self.db = db
        self.reader = reader
        # A workspace with its own `[agent]` reads with its own history and file limits.
        self.by_team = dict(by_team or {})

    async def read(self, job: Job, run_id: str) -> list[dict[str, Any]]:
        """Input items for the run `job` starts, to go before its message."""
        if not job.message_ts or not job.user_id:
            return []
        thread = ThreadRef.from_key(job.thread_key)
        if thread.thread_ts == job.message_ts:
            # The thread's first message: nothing came before it, so there is nothing taken
            # to look up, and Slack has only the message's own files to give.
            if job.has_files is False:
                return []
            after = None
        else:
            after = await newest_message_taken(
                self.db, thread_key=job.thread_key, before_ts=job.message_ts, except_job=job.id
            )
        reader = self.by_team.get(thread.team_id, self.reader)
        context = await reader.read(
            thread,
            message_ts=job.message_ts,
            user_id=job.user_id,
            after_ts=after,
        )
        if context.authors:
            await add_requesters(self.db, run_id=run_id, user_ids=sorted(context.authors))
        return context.items

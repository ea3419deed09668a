"""The storage calls a test needs, made the way the bot makes them.

The bot stores a message with `accept_messages` (in batches), starts a job and its run in one
worker step (`next_step_under_lease`), and claims a resume inside that step; tests that set up
state directly go through the same functions rather than through test-only twins.
"""

from datetime import timedelta

from storage.database import Database
from storage.ids import ThreadRef
from storage.messages import Accepted, IncomingRow, accept_messages
from storage.models import Approval, Job, JobStatus
from storage.outbox import Claimant
from storage.queue import Step, next_step_under_lease
from storage.runs import BegunResume, NewApproval, SavedState, begin_resume, pause_run


async def accept(
    db: Database,
    *,
    event_id: str,
    thread: ThreadRef,
    user_id: str,
    message_ts: str,
    text: str,
    only_known_thread: bool,
) -> Accepted:
    row = IncomingRow(event_id, thread, user_id, message_ts, text, only_known_thread)
    [accepted] = await accept_messages(db, [row])
    return accepted


async def next_step(
    db: Database,
    *,
    thread_key: str,
    owner: str,
    ttl: timedelta,
    finished: tuple[int, JobStatus] | None = None,
) -> Step | None:
    return await next_step_under_lease(
        db, thread_key=thread_key, owner=owner, ttl=ttl, history_limit=0, finished=finished
    )


async def next_job(db: Database, *, thread_key: str, owner: str, ttl: timedelta) -> Job | None:
    step = await next_step(db, thread_key=thread_key, owner=owner, ttl=ttl)
    return step.job if step is not None else None


async def claim_resume(db: Database, *, run_id: str) -> BegunResume | None:
    async with db.write() as session:
        return await begin_resume(session, run_id=run_id, history_limit=0)


async def paused_on(
    db: Database, *, thread: ThreadRef, call: NewApproval, by: Claimant
) -> Approval:
    """A mention in `thread` whose run paused on `call`, stored as the bot stores it."""
    await accept(
        db,
        event_id=f"Ev-{thread.key}",
        thread=thread,
        user_id="U1",
        message_ts=thread.thread_ts,
        text="hello",
        only_known_thread=False,
    )
    step = await next_step(db, thread_key=thread.key, owner="w", ttl=timedelta(seconds=30))
    assert step is not None
    assert step.run is not None
    [approval] = (
        await pause_run(
            db,
            by=by,
            run_id=step.run.run.id,
            saved=SavedState(state="{}", sdk_version="x", schema_version="1.21"),
            approvals=[call],
            thread=thread,
            requested_by="U1",
            expire_after=timedelta(hours=1),
        )
    ).approvals
    return approval

"""What a run reads of its thread beyond its history: where that starts, and who it makes a
requester."""

from datetime import timedelta

import pytest

from storage.database import Database
from storage.ids import ThreadRef
from storage.messages import newest_message_taken
from storage.models import Job
from storage.outbox import Claimant
from storage.runs import NewApproval, SavedState, add_requesters, get_run, pause_run
from tests.storage_steps import accept, next_step

THREAD = ThreadRef("T1", "C1", "1700000000.000100")
LEASE = timedelta(seconds=30)


async def _accept(db: Database, ts: str, *, thread: ThreadRef = THREAD, user: str = "U1") -> None:
    await accept(
        db,
        event_id=f"Ev{ts}{thread.channel_id}",
        thread=thread,
        user_id=user,
        message_ts=ts,
        text="hello",
        only_known_thread=False,
    )


async def _started(db: Database) -> tuple[Job, str]:
    step = await next_step(db, thread_key=THREAD.key, owner="w", ttl=LEASE)
    assert step is not None
    assert step.run is not None
    return step.job, step.run.run.id


async def test_the_newest_message_taken_before_a_message_bounds_what_its_run_reads(
    db: Database,
) -> None:
    await _accept(db, "1700000000.000100")
    await _accept(db, "1700000009.000100")
    await _accept(db, "1700000002.000100", thread=ThreadRef("T1", "C2", THREAD.thread_ts))
    job, _ = await _started(db)
    assert job.message_ts == "1700000000.000100"

    assert (
        await newest_message_taken(
            db, thread_key=THREAD.key, before_ts="1700000000.000100", except_job=job.id
        )
        is None
    )
    # A later message sees the earlier one, never itself, and nothing of another thread.
    assert (
        await newest_message_taken(db, thread_key=THREAD.key, before_ts="1700000009.000100")
        == "1700000000.000100"
    )
    assert (
        await newest_message_taken(db, thread_key=THREAD.key, before_ts="1800000000.000000")
        == "1700000009.000100"
    )


async def test_added_requesters_reach_the_approvals_of_the_runs_pause(db: Database) -> None:
    await _accept(db, THREAD.thread_ts, user="U1")
    _, run_id = await _started(db)

    assert await add_requesters(db, run_id=run_id, user_ids=["U2", "U1", "U3", "U2"]) == [
        "U1",
        "U2",
        "U3",
    ]
    assert await add_requesters(db, run_id=run_id, user_ids=[]) == ["U1", "U2", "U3"]
    [approval] = (
        await pause_run(
            db,
            run_id=run_id,
            saved=SavedState(state="{}", sdk_version="x", schema_version="1"),
            approvals=[NewApproval("call_1", "delete", "{}", approvers=["U9"])],
            thread=THREAD,
            requested_by="U1",
            expire_after=timedelta(hours=1),
            by=Claimant("test"),
        )
    ).approvals

    assert approval.requesters == ["U1", "U2", "U3"]
    run = await get_run(db, run_id)
    assert run is not None
    assert run.requesters == ["U1", "U2", "U3"]
    with pytest.raises(LookupError):
        await add_requesters(db, run_id="run_" + "0" * 32, user_ids=["U2"])

"""A process dies mid-job: another notices, tells the thread, and Retry goes on safely."""

import asyncio
import json
from collections import Counter
from datetime import timedelta
from typing import TypeVar

from agents.testing import ScriptedModel, assistant_message, function_call
from sqlalchemy import update
from sqlmodel import col, select

from bot.agent.runs import CallDecision
from bot.slack.blocks import APPROVE_ACTION, RETRY_ACTION
from storage import history
from storage.approvals import claim_execution, decide_approval
from storage.database import Database
from storage.ids import ThreadRef
from storage.models import (
    Approval,
    ApprovalStatus,
    Job,
    JobKind,
    JobStatus,
    Run,
    RunStatus,
    Thread,
    utcnow,
)
from storage.outbox import Claimant
from storage.runs import get_run
from tests.fakes.slack_api import FakeSlackAPI, RecordedCall
from tests.integration.conftest import (
    APPROVER,
    ASKER,
    CHANNEL,
    OUTSIDER,
    approval_config,
    approval_ids,
    approval_messages,
    blocked_until,
    texts,
)
from tests.running_app import RunningBot, running_bot
from tests.storage_steps import accept, next_step

THREAD = ThreadRef("T0TEAM", CHANNEL, "20.1")
LEASE = timedelta(seconds=30)


async def _dead_process_holds(db: Database) -> None:
    """Make the thread's lease look like its owner died a while ago."""
    async with db.write() as session:
        await session.execute(
            update(Thread).values(lease_owner="dead:1", lease_expires_at=utcnow() - timedelta(1))
        )


async def _message_job_running_in_a_dead_process(db: Database) -> str:
    await accept(
        db,
        event_id="Ev0DEAD",
        thread=THREAD,
        user_id=ASKER,
        message_ts="20.1",
        text="what is the weather?",
        only_known_thread=False,
    )
    step = await next_step(db, thread_key=THREAD.key, owner="dead:1", ttl=LEASE)
    assert step is not None
    assert step.run is not None
    await _dead_process_holds(db)
    return step.run.run.id


def retry_buttons(slack: FakeSlackAPI) -> list[RecordedCall]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if any(
            e.get("action_id") == RETRY_ACTION
            for b in c.args.get("blocks") or []
            if b.get("type") == "actions"
            for e in b["elements"]
        )
    ]


async def press_retry(bot: RunningBot, run_id: str, user: str) -> None:
    await bot.send(
        bot.requests.block_actions(
            user=user,
            action_id=RETRY_ACTION,
            value=run_id,
            channel=CHANNEL,
            message_ts="20.9",
            thread_ts=THREAD.thread_ts,
        )
    )
    await bot.settle()


async def test_a_dead_processes_run_is_reported_and_retry_answers_it(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Sunny.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        run_id = await _message_job_running_in_a_dead_process(bot.app.db)
        await bot.app.sweeper.sweep()
        await bot.settle()
        [note] = retry_buttons(slack)
        assert note.args["thread_ts"] == THREAD.thread_ts
        assert "stopped unexpectedly" in note.args["text"]
        run = await get_run(bot.app.db, run_id)
        assert run is not None
        assert run.status == RunStatus.INTERRUPTED
        await bot.app.sweeper.sweep()  # reported once, not at every sweep
        await bot.settle()
        assert len(retry_buttons(slack)) == 1

        await press_retry(bot, run_id, OUTSIDER)
        assert "who asked or an approver" in slack.calls_to("chat.postEphemeral")[-1].args["text"]
        assert not model.calls

        await press_retry(bot, run_id, ASKER)
        assert texts(slack.messages_in_thread(CHANNEL, THREAD.thread_ts))[-1] == "Sunny."
        assert "Retried by" in slack.calls_to("chat.update")[-1].args["text"]
        first = model.first_call
        assert first is not None
        assert "what is the weather?" in json.dumps(first.input)

        await press_retry(bot, run_id, ASKER)
        assert "already retried" in slack.calls_to("chat.postEphemeral")[-1].args["text"]
        assert len(model.calls) == 1


async def test_an_interrupted_resume_names_the_call_in_flight_and_never_runs_it_twice(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c9"}, call_id="call_1")],
            [assistant_message("Done.")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        db = bot.app.db
        await bot.send(bot.requests.mention(text="delete c9", user=ASKER, ts=THREAD.thread_ts))
        await bot.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])
        # The approval is decided and its call started in a process that then died.
        decision = await decide_approval(
            db,
            by=Claimant("test"),
            approval_id=approval_id,
            status=ApprovalStatus.APPROVED,
            decided_by=APPROVER,
        )
        assert decision is not None
        assert decision.resume_queued
        run = await _only(db, Run)
        assert (await claim_execution(db, run_id=run.id, call_id="call_1")).may_run
        step = await next_step(db, thread_key=THREAD.key, owner="dead:1", ttl=LEASE)
        assert step is not None
        assert step.resume is not None
        await _dead_process_holds(db)

        await bot.app.sweeper.sweep()
        await bot.settle()
        [note] = retry_buttons(slack)
        rendered = json.dumps(note.args["blocks"])
        assert "delete_customer" in rendered
        assert "may or may not have run" in rendered
        assert not executions

        await press_retry(bot, run.id, APPROVER)
        assert not executions  # the call had started once: it is not started again
        last_input = json.dumps(model.calls[-1].input)
        assert "not run again" in last_input
        assert texts(slack.messages_in_thread(CHANNEL, THREAD.thread_ts))[-1] == "Done."
        async with db.read() as session:
            resumes = await session.scalars(
                select(Job).where(col(Job.run_id) == run.id, col(Job.kind) == JobKind.RESUME)
            )
            assert sorted(j.status for j in resumes) == [JobStatus.DONE, JobStatus.FAILED]


async def test_a_message_that_had_not_started_its_run_simply_waits_its_turn(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([[assistant_message("Answered after all.")]])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        db = bot.app.db
        await accept(
            db,
            event_id="Ev0EARLY",
            thread=THREAD,
            user_id=ASKER,
            message_ts="20.1",
            text="hello?",
            only_known_thread=False,
        )
        # A job taken by a process that died before its step began the run.
        async with db.write() as session:
            await session.execute(
                update(Job).values(status=JobStatus.RUNNING, owner="dead:1", started_at=utcnow())
            )
        await _dead_process_holds(db)
        await bot.app.sweeper.sweep()
        await bot.settle()
        assert not retry_buttons(slack)
        assert texts(slack.calls_to("chat.postMessage")) == ["Answered after all."]


async def test_a_second_resume_of_the_same_pause_cannot_run_the_tool_again(
    database_url: str, slack: FakeSlackAPI, executions: Counter[str]
) -> None:
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": "c3"}, call_id="call_1")],
            [assistant_message("first")],
            [assistant_message("second")],
        ]
    )
    async with running_bot(
        database_url=database_url, slack=slack, config=approval_config(), model=model
    ) as bot:
        await bot.send(bot.requests.mention(text="delete c3", user=ASKER, ts=THREAD.thread_ts))
        await bot.settle()
        [approval_id] = approval_ids(approval_messages(slack)[0])
        run = await _only(bot.app.db, Run)
        saved = run.state
        assert saved is not None
        await bot.send(
            bot.requests.block_actions(
                user=APPROVER,
                action_id=APPROVE_ACTION,
                value=approval_id,
                channel=CHANNEL,
                message_ts="20.2",
            )
        )
        await bot.settle()
        assert executions == Counter({"delete_customer:c3": 1})
        # Resume the very same stored pause again, as a buggy or racing caller might.
        runs = bot.app.runs
        _outcome, _ = await runs.resume(
            saved,
            decisions={"call_1": CallDecision(approved=True)},
            new_messages=[],
            history=runs.history(THREAD.key),
        )
        assert executions == Counter({"delete_customer:c3": 1})
        approval = await _only(bot.app.db, Approval)
        assert approval.outcome == "customer c3 deleted"
        assert approval.executed_at is not None


T = TypeVar("T", Run, Approval)


async def _only(db: Database, model: type[T]) -> T:
    async with db.read() as session:
        [row] = (await session.scalars(select(model))).all()
        return row


async def test_a_forged_retry_value_gets_a_private_answer(
    database_url: str, slack: FakeSlackAPI
) -> None:
    model = ScriptedModel([])
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        for value in ("", "run_not-hex", "run_" + "0" * 32, "x" * 3000):
            await press_retry(bot, value, ASKER)
        notes = [c.args["text"] for c in slack.calls_to("chat.postEphemeral")]
        assert len(notes) == 4
        assert "can't find that run" in notes[2]
        assert not model.calls


async def test_a_run_cut_short_leaves_no_history_and_its_retry_asks_once(
    database_url: str, slack: FakeSlackAPI
) -> None:
    never, started = asyncio.Event(), asyncio.Event()
    model = ScriptedModel(
        [blocked_until(never, "never", started), [assistant_message("Sunny after all.")]]
    )
    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await bot.send(bot.requests.mention(text="what is the weather?", ts=THREAD.thread_ts))
        await started.wait()
        assert await bot.app.stop(drain_timeout=0.2) is False
        assert await history.read_newest(bot.app.db, thread_key=THREAD.key, limit=None) == []
        run = await _only(bot.app.db, Run)
        assert run.status == RunStatus.INTERRUPTED

    async with running_bot(database_url=database_url, slack=slack, model=model) as bot:
        await press_retry(bot, run.id, ASKER)
        assert texts(slack.messages_in_thread(CHANNEL, THREAD.thread_ts))[-1] == "Sunny after all."
        retried = model.calls[-1]
        assert json.dumps(retried.input).count("what is the weather?") == 1
        stored = await history.read_newest(bot.app.db, thread_key=THREAD.key, limit=None)
        assert [json.loads(row)["role"] for row in stored] == ["user", "assistant"]

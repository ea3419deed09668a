"""`python -m bot console` as a newcomer runs it: a real process, standard input and output,
the fake model server over HTTP, the configured database, and no Slack settings at all."""

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bot.approvals.approvals import NOT_EDITABLE
from storage.database import Database
from storage.models import (
    Approval,
    ApprovalDecision,
    ApprovalStatus,
    DecisionKind,
    OutboxMessage,
    OutboxStatus,
    Run,
    RunStatus,
)
from tests.bot_process import ROOT, free_port
from tests.fakes.model_server import FakeModelServer

USER = "alice"
CONFIG = """
[agent]
model = "gpt-test"

[tools]
modules = ["tests.tools_for_tests"]

[approvals]
approvers = ["UAPPROVER1"]

[approvals.tools.lookup_order]
require = "never"

[approvals.tools.refund]
allow_edit = true
approvals_needed = 2
"""
QUESTION = "Approve? [y/n/e] "


@dataclass
class Console:
    code: int
    out: str
    err: str


def console_env(tmp_path: Path, database_url: str, model_url: str | None) -> dict[str, str]:
    config = tmp_path / "threadgate.toml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "THREADGATE_CONFIG": str(config),
        "THREADGATE_TEST_TOOL_LOG": str(tmp_path / "tool.log"),
        "THREADGATE_CONSOLE_USER": USER,
    }
    if model_url is not None:
        env |= {"OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": model_url}
    return env


async def console(env: dict[str, str], cwd: Path, typed: str) -> Console:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(typed.encode()), timeout=90)
    assert process.returncode is not None
    return Console(process.returncode, out.decode(), err.decode())


async def run_console(
    database_url: str, model: FakeModelServer, tmp_path: Path, typed: str
) -> Console:
    done = await console(console_env(tmp_path, database_url, model.base_url), tmp_path, typed)
    assert "Traceback" not in done.err, done.err
    assert "sk-test-key" not in done.err
    return done


def executions(tmp_path: Path) -> list[str]:
    log = tmp_path / "tool.log"
    return log.read_text().splitlines() if log.exists() else []


async def stored(database_url: str) -> tuple[list[Run], list[Approval], list[ApprovalDecision]]:
    db = Database(database_url)
    try:
        async with db.read() as session:
            runs = list(await session.scalars(select(Run).order_by(col(Run.created_at))))
            approvals = list(await session.scalars(select(Approval)))
            decisions = list(
                await session.scalars(select(ApprovalDecision).order_by(col(ApprovalDecision.id)))
            )
            undelivered = list(
                await session.scalars(
                    select(OutboxMessage).where(col(OutboxMessage.status) != OutboxStatus.DELIVERED)
                )
            )
    finally:
        await db.dispose()
    assert undelivered == []  # nothing is left for a Slack process to post
    return runs, approvals, decisions


def tool_outputs(request: dict[str, Any]) -> list[str]:
    return [
        str(item.get("output"))
        for item in request.get("input") or []
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


async def test_a_message_is_answered_and_the_end_of_input_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_text("Hello from the console.")
        done = await run_console(database_url, model, tmp_path, "hi\n")
        [request] = model.requests
    assert done.code == 0
    assert done.out == "Hello from the console.\n"
    assert "hi" in json.dumps(request["input"])
    [run], approvals, _ = await stored(database_url)
    assert (run.status, run.requested_by, run.thread_key.split(":")[:2]) == (
        RunStatus.COMPLETED,
        USER,
        ["console", "console"],
    )
    assert approvals == []


async def test_y_approves_the_call_which_runs_once(database_url: str, tmp_path: Path) -> None:
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c7"}))
        model.reply_text("c7 is deleted.")
        done = await run_console(database_url, model, tmp_path, "delete c7\ny\n")
        assert tool_outputs(model.requests[1]) == ["customer c7 deleted"]
    assert done.code == 0
    assert "Approval needed: delete_customer" in done.out
    assert '"customer_id": "c7"' in done.out
    assert done.out.endswith(QUESTION + "Approved.\nc7 is deleted.\n")
    assert executions(tmp_path) == ["delete_customer:c7"]
    [run], [approval], decisions = await stored(database_url)
    assert run.status == RunStatus.COMPLETED
    assert (approval.status, approval.decided_by) == (ApprovalStatus.APPROVED, USER)
    assert approval.executed_at is not None
    assert approval.outcome == "customer c7 deleted"
    assert [(d.kind, d.user_id) for d in decisions] == [(DecisionKind.APPROVE, USER)]


async def test_n_with_a_reason_rejects_the_call_and_the_model_is_told(
    database_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c7"}))
        model.reply_text("I did not delete c7.")
        done = await run_console(database_url, model, tmp_path, "delete c7\nn\nnot today\n")
        assert tool_outputs(model.requests[1]) == ["not today"]
    assert done.code == 0
    assert done.out.endswith(QUESTION + "Reason (optional): Rejected.\nI did not delete c7.\n")
    assert executions(tmp_path) == []
    [run], [approval], decisions = await stored(database_url)
    assert run.status == RunStatus.COMPLETED
    assert (approval.status, approval.reason, approval.executed_at) == (
        ApprovalStatus.REJECTED,
        "not today",
        None,
    )
    assert [(d.kind, d.user_id) for d in decisions] == [(DecisionKind.REJECT, USER)]


async def test_e_edits_where_the_policy_allows_and_the_edited_call_runs(
    database_url: str, tmp_path: Path
) -> None:
    """The console decides alone, even where the policy asks for two approvals; an edit
    that does not fit the tool's schema is refused and asked again."""
    async with FakeModelServer() as model:
        model.reply_tool_calls(("refund", {"order_id": "o1", "amount": 500}))
        model.reply_text("Refunded 50 on o1.")
        typed = "refund o1\ne\n\nlots\ne\n\n50\n"
        done = await run_console(database_url, model, tmp_path, typed)
        [output] = tool_outputs(model.requests[1])
    assert done.code == 0
    assert "amount: Not valid JSON (put strings in quotes).\nThe edit was not saved.\n" in done.out
    assert "order_id [o1]: amount [500]: Approved." in done.out
    assert output.startswith('Ran with arguments edited by an approver: {"order_id": "o1"')
    assert output.endswith("refunded 50.0 on o1")
    assert executions(tmp_path) == ["refund:o1"]
    _, [approval], decisions = await stored(database_url)
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.approvals_needed == 2
    assert json.loads(approval.edited_arguments or "") == {"order_id": "o1", "amount": 50}
    assert [(d.kind, d.user_id) for d in decisions] == [
        (DecisionKind.EDIT, USER),
        (DecisionKind.APPROVE, USER),
    ]


async def test_e_is_refused_where_the_policy_does_not_allow_edits(
    database_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c7"}))
        model.reply_text("Deleted as asked.")
        done = await run_console(database_url, model, tmp_path, "delete c7\ne\ny\n")
    assert done.code == 0
    assert f"{QUESTION}{NOT_EDITABLE}\n{QUESTION}Approved." in done.out
    assert executions(tmp_path) == ["delete_customer:c7"]
    _, [approval], decisions = await stored(database_url)
    assert approval.edited_arguments is None
    assert [d.kind for d in decisions] == [DecisionKind.APPROVE]


async def test_a_call_the_policy_lets_through_runs_without_a_question(
    database_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_tool_calls(("lookup_order", {"order_id": "o1"}))
        model.reply_text("Order o1 has shipped.")
        done = await run_console(database_url, model, tmp_path, "where is o1?\n")
    assert done.code == 0
    assert done.out == "Order o1 has shipped.\n"
    assert executions(tmp_path) == ["lookup_order:o1"]
    [run], approvals, _ = await stored(database_url)
    assert run.status == RunStatus.COMPLETED
    assert approvals == []


async def test_end_of_input_at_the_question_leaves_the_call_unrun_and_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    async with FakeModelServer() as model:
        model.reply_tool_calls(("delete_customer", {"customer_id": "c7"}))
        done = await run_console(database_url, model, tmp_path, "delete c7\n")
    assert done.code == 0
    assert done.out.endswith(
        QUESTION + "\nNo answer: the call was not run, and waits for a decision.\n"
    )
    assert executions(tmp_path) == []
    [run], [approval], _ = await stored(database_url)
    assert (run.status, approval.status) == (RunStatus.WAITING, ApprovalStatus.PENDING)


async def test_a_model_server_that_cannot_be_reached_is_one_line_per_message(
    database_url: str, tmp_path: Path
) -> None:
    env = console_env(tmp_path, database_url, f"http://127.0.0.1:{free_port()}/v1")
    done = await console(env, tmp_path, "hi\nstill there?\n")
    assert done.code == 0
    lines = done.out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("error: The model server could not be reached. (reference ")
    assert "Traceback" not in done.err
    runs, _, _ = await stored(database_url)
    assert [run.status for run in runs] == [RunStatus.FAILED, RunStatus.FAILED]


async def test_without_model_settings_it_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    env = console_env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", None)
    done = await console(env, tmp_path, "hi\n")
    assert done.code == 2
    assert done.out == ""
    assert done.err.splitlines() == [
        "threadgate: setting OPENAI_API_KEY is missing (or set OPENAI_BASE_URL to a local "
        "model server)"
    ]

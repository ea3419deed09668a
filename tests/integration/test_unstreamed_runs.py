"""Where answers are not streamed, a run is the SDK's plain run (no server-sent events to
parse), and the process that paused a run resumes it from the state object it stored rather
than parsing the stored copy back; what is stored stays the only truth."""

from typing import Any

import pytest
from agents import RunState
from agents.testing import ScriptedModel, assistant_message, function_call

from tests.fakes.slack_api import FakeSlackAPI
from tests.integration.conftest import APPROVER, CHANNEL, approval_config, approval_ids, texts
from tests.integration.test_approvals import THREAD_TS, ask, click
from tests.running_app import running_bot


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every stored state the SDK is asked to parse."""
    parsed: list[str] = []
    original = RunState.from_string

    async def counting(agent: Any, state: str, **kwargs: Any) -> Any:
        parsed.append(state)
        return await original(agent, state, **kwargs)

    monkeypatch.setattr(RunState, "from_string", staticmethod(counting))
    return parsed


def _model() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("lookup_order", {"order_id": "o1"}, call_id="look_1")],
            [function_call("refund", {"order_id": "o1", "amount": 5}, call_id="refund_1")],
            [assistant_message("Refunded.")],
        ]
    )


def _config() -> Any:
    return approval_config(tools={"lookup_order": {"require": "never"}})


async def test_an_unstreamed_run_shows_its_tool_calls_in_the_status(
    database_url: str, slack: FakeSlackAPI, parses: list[str]
) -> None:
    async with running_bot(
        database_url=database_url, slack=slack, model=_model(), config=_config()
    ) as bot:
        await ask(bot, "refund o1")
        statuses = slack.statuses(CHANNEL, THREAD_TS)
        assert "is running lookup_order…" in statuses
        assert statuses[-1].startswith("is waiting for approval by")
        assert not slack.streams
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]
        # The resume's "thinking" reaches Slack late: the run does not wait for it, and the
        # statuses after it still land in order, the clear last (a reply would not clear a
        # status that lands after it). Slow enough to be on its way still when the answer
        # is posted, however loaded the machine.
        slack.slow("assistant.threads.setStatus", 1.5)
        await click(bot, approval_ids(card)[0])
    assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Refunded."
    after_click = slack.statuses(CHANNEL, THREAD_TS)[len(statuses) :]
    assert after_click == ["is thinking…", "is running refund…", ""]
    calls = list(enumerate(slack.calls))
    answered_at = next(i for i, c in calls if c.args.get("text") == "Refunded.")
    thinking_at = max(i for i, c in calls if c.args.get("status") == "is thinking…")
    assert answered_at < thinking_at  # the run went on while its status was on the way
    # This process paused the run and stored exactly the state it kept: nothing to parse.
    assert parses == []


async def test_an_answer_posted_whole_leaves_clearing_its_status_to_slack(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """Slack clears a thread's status when the app replies: with no status call on its way,
    the answer's post is the clear, and no call of its own is made."""
    async with running_bot(
        database_url=database_url, slack=slack, model=_model(), config=_config()
    ) as bot:
        await ask(bot, "refund o1")
        before = slack.statuses(CHANNEL, THREAD_TS)
        assert before[-1].startswith("is waiting for approval by")
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]
        await click(bot, approval_ids(card)[0])
    assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Refunded."
    assert slack.statuses(CHANNEL, THREAD_TS)[len(before) :] == [
        "is thinking…",
        "is running refund…",
    ]
    assert slack.status_shown(CHANNEL, THREAD_TS) == ""


async def test_an_answer_that_overtakes_its_thinking_status_clears_it(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """The mention's "thinking" is still on its way when the answer is posted: it lands after
    the reply, so the bot clears it itself."""
    slack.slow("assistant.threads.setStatus", 1.5)  # on its way still, however loaded
    async with running_bot(
        database_url=database_url,
        slack=slack,
        model=ScriptedModel([[assistant_message("Hello.")]]),
        config=_config(),
    ) as bot:
        await ask(bot, "hi")
    assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Hello."
    assert slack.statuses(CHANNEL, THREAD_TS) == ["is thinking…", ""]
    assert slack.status_shown(CHANNEL, THREAD_TS) == ""


async def test_a_restarted_process_resumes_from_the_stored_state(
    database_url: str, slack: FakeSlackAPI, parses: list[str]
) -> None:
    model = _model()
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config()
    ) as bot:
        await ask(bot, "refund o1")
        [card] = [c for c in slack.calls_to("chat.postMessage") if approval_ids(c)]
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=_config()
    ) as bot:
        await click(bot, approval_ids(card)[0])
    assert len(parses) == 1
    assert texts(slack.messages_in_thread(CHANNEL, THREAD_TS))[-1] == "Refunded."


async def test_the_waiting_status_names_approvers_from_one_lookup_each(
    database_url: str, slack: FakeSlackAPI
) -> None:
    """A person's name is asked of Slack once per process, and so is the answer that there
    is no such person; a failure that may pass is not remembered."""
    slack.users[APPROVER] = {"name": "ann", "profile": {"display_name": "Ann"}}
    model = ScriptedModel(
        [
            [function_call("delete_customer", {"customer_id": f"c{i}"}, call_id=f"call_{i}")]
            for i in range(3)
        ]
    )
    config = approval_config(approvers=[APPROVER, "UNOBODY01"])
    async with running_bot(
        database_url=database_url, slack=slack, model=model, config=config
    ) as bot:
        slack.fail("users.info", status=500)
        await ask(bot, "delete c0", ts="1700000002.000100")
        await ask(bot, "delete c1", ts="1700000003.000100")
        await ask(bot, "delete c2", ts="1700000004.000100")
    # The first lookup of Ann failed (a fault is not a recorded call) and was asked again.
    assert [f.call.args["user"] for f in slack.faults] == [APPROVER]
    assert sorted(c.args["user"] for c in slack.calls_to("users.info")) == [APPROVER, "UNOBODY01"]
    assert slack.statuses(CHANNEL, "1700000002.000100")[-1] == (
        "is waiting for approval by an approver"
    )
    for ts in ("1700000003.000100", "1700000004.000100"):
        assert slack.statuses(CHANNEL, ts)[-1] == "is waiting for approval by @Ann, an approver"

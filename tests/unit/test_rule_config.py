"""`[[approvals.rules]]` and the per-tool keys: the issue's syntax is read as written, and every
mistake stops start-up naming the file, the rule's number, the key and the reason."""

from datetime import timedelta
from pathlib import Path

import pytest

from bot.agent.build import check_policy_tools
from bot.approvals.policy import Policy
from bot.config import ConfigError, load_config

ISSUE_EXAMPLE = """\
[approvals.tools.refund]
require = "always"
approvers = ["S0FINANCE"]
approvals_needed = 1
allow_for_thread = false
thread_approval_ttl = "8h"
allow_edit = false

[[approvals.rules]]
tools = ["refund"]
channels = ["C0PAYMENTS"]
requesters = ["U0ALICE", "S0SUPPORT"]
when = { amount = { gt = 1000 }, currency = { in = ["EUR", "USD"] } }
require = "always"
approvers = ["S0FINANCE"]
approvals_needed = 2

[[approvals.rules]]
tools = ["refund"]
when = { amount = { lte = 50 } }
require = "never"
"""

TOOLS = {"refund": object(), "delete_customer": object()}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "threadgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check_policy_tools(load_config(path), TOOLS, config_path=path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    return caught.value


def _second_rule(body: str) -> str:
    return f'[[approvals.rules]]\ntools = ["refund"]\n\n[[approvals.rules]]\n{body}\n'


def test_the_issue_example_is_read_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path, ISSUE_EXAMPLE)
    config = load_config(path)
    check_policy_tools(config, TOOLS, config_path=path)

    refund = config.approvals.tools["refund"]
    first, second = config.approvals.rules
    assert (refund.approvals_needed, refund.allow_for_thread, refund.allow_edit) == (
        1,
        False,
        False,
    )
    assert refund.thread_approval_ttl == "8h"
    assert first.channels == ["C0PAYMENTS"]
    assert first.requesters == ["U0ALICE", "S0SUPPORT"]
    assert first.when["amount"].operators() == {"gt": 1000}
    assert first.when["currency"].operators() == {"in": ["EUR", "USD"]}
    assert (first.require, first.approvers, first.approvals_needed) == (
        "always",
        ["S0FINANCE"],
        2,
    )
    assert second.when["amount"].operators() == {"lte": 50}
    assert second.require == "never"


def test_tool_keys_default_as_the_issue_says(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[approvals.tools.refund]\n"))

    refund = config.approvals.tools["refund"]
    assert refund.approvals_needed == 1
    assert refund.allow_for_thread is False
    assert refund.allow_edit is False
    policy = Policy.from_config(config.approvals)
    assert policy.table("refund").thread_approval_ttl == timedelta(hours=8)


def test_every_operator_is_accepted(tmp_path: Path) -> None:
    when = (
        'when = { a = { eq = "x" }, b = { ne = 1 }, c = { gt = 1, gte = 2, lt = 3, lte = 4 }, '
        'd = { in = ["x"] }, e = { not_in = [1] }, f = { matches = "x+" }, '
        '"g.h" = { exists = false } }'
    )
    config = load_config(_write(tmp_path, f'[[approvals.rules]]\ntools = ["*"]\n{when}\n'))

    assert len(config.approvals.rules[0].when) == 7


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (
            'tools = ["refund"]\nwhen = { amount = { greater = 1 } }',
            "approvals.rules.2.when.amount.greater",
            "rule 2: unknown operator",
        ),
        (
            'tools = ["refund"]\nwhen = { name = { matches = "([a-z" } }',
            "approvals.rules.2.when.name.matches",
            "rule 2: '([a-z' is not a regular expression that compiles",
        ),
        (
            'tools = ["refund"]\nallow_for_thread = true\napprovals_needed = 2',
            "approvals.rules.2.allow_for_thread",
            "rule 2: allow_for_thread cannot be combined with approvals_needed > 1",
        ),
        (
            'tools = ["refund"]\nwhen = { amount = { gt = "1000" } }',
            "approvals.rules.2.when.amount.gt",
            "rule 2: must be a number",
        ),
        (
            'tools = ["refund"]\nwhen = { amount = {} }',
            "approvals.rules.2.when.amount",
            "rule 2: needs an operator",
        ),
        (
            'tools = ["refund"]\nwhen = { "a..b" = { exists = true } }',
            "approvals.rules.2.when",
            "rule 2: 'a..b' is not an argument path",
        ),
        ('tools = ["*", "refund"]', "approvals.rules.2.tools", 'rule 2: "*" means every tool'),
        ("tools = []", "approvals.rules.2.tools", "rule 2: List should have at least 1 item"),
        ('require = "never"', "approvals.rules.2.tools", "rule 2: Field required"),
        (
            'tools = ["refund"]\nsometimes = true',
            "approvals.rules.2.sometimes",
            "rule 2: unknown key",
        ),
        (
            'tools = ["refund"]\nchannels = ["#payments"]',
            "approvals.rules.2.channels",
            "rule 2: '#payments' is not a Slack channel id",
        ),
        (
            'tools = ["refund"]\nrequesters = ["alice"]',
            "approvals.rules.2.requesters",
            "rule 2: 'alice' is not a Slack user id",
        ),
        (
            'tools = ["refund"]\nthread_approval_ttl = "soon"',
            "approvals.rules.2.thread_approval_ttl",
            "rule 2: 'soon' is not a duration",
        ),
        (
            'tools = ["refund"]\napprovals_needed = 0',
            "approvals.rules.2.approvals_needed",
            "rule 2: Input should be greater than or equal to 1",
        ),
        (
            'tools = ["refund", "refnud"]',
            "approvals.rules.2.tools.1",
            "rule 2: no loaded tool is named 'refnud'",
        ),
    ],
)
def test_a_bad_rule_stops_start_up_naming_its_number_key_and_reason(
    tmp_path: Path, body: str, key: str, reason: str
) -> None:
    error = _error(tmp_path, _second_rule(body))

    assert error.key == key
    assert error.reason.startswith(reason)
    assert f"{key}: {reason}" in str(error)


def test_a_rule_that_takes_a_quorum_from_its_tool_and_allows_thread_approval_is_refused(
    tmp_path: Path,
) -> None:
    text = (
        "[approvals.tools.refund]\napprovals_needed = 2\n\n"
        '[[approvals.rules]]\ntools = ["refund"]\nallow_for_thread = true\n'
    )

    error = _error(tmp_path, text)

    assert error.key == "approvals.rules.1.allow_for_thread"
    assert "allow_for_thread cannot be combined with approvals_needed > 1" in error.reason


def test_thread_approval_with_a_quorum_in_a_tool_table_is_refused(tmp_path: Path) -> None:
    text = "[approvals.tools.refund]\napprovals_needed = 3\nallow_for_thread = true\n"

    error = _error(tmp_path, text)

    assert error.key == "approvals.tools.refund.allow_for_thread"
    assert "approvals_needed > 1" in error.reason


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("approvals_needed = 0", "approvals.tools.refund.approvals_needed"),
        ('thread_approval_ttl = "0h"', "approvals.tools.refund.thread_approval_ttl"),
        ('allow_edit = "yes"', "approvals.tools.refund.allow_edit"),
        ("allow_for_thread = 1", "approvals.tools.refund.allow_for_thread"),
    ],
)
def test_bad_tool_keys_stop_start_up(tmp_path: Path, line: str, key: str) -> None:
    assert _error(tmp_path, f"[approvals.tools.refund]\n{line}\n").key == key


def test_a_rule_with_thread_approval_and_a_quorum_is_refused_before_tools_load(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path, _second_rule('tools = ["*"]\napprovals_needed = 2\nallow_for_thread = true')
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.key == "approvals.rules.2.allow_for_thread"

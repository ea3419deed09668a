"""`remind_after`, `escalate_after` and `escalate_to`: read per table and rule, refused out of
order with the key to blame."""

from datetime import timedelta
from pathlib import Path

import pytest

from bot.approvals.policy import Policy
from bot.config import ConfigError, load_config


def _load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "threadgate.toml"
    path.write_text(text, encoding="utf-8")
    return Policy.from_config(load_config(path).approvals)


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return caught.value


TOP = '[approvals]\napprovers = ["UAPPROVER1"]\n'


def test_steps_come_from_the_rule_then_the_tool_then_approvals(tmp_path: Path) -> None:
    policy = _load(
        tmp_path,
        TOP
        + 'remind_after = "30m"\nescalate_after = "2h"\nescalate_to = ["S0ONCALL"]\n'
        + '[approvals.tools.refund]\nremind_after = "10m"\n'
        + '[[approvals.rules]]\ntools = ["refund"]\nwhen.amount.gt = 100\n'
        + 'escalate_after = "1h"\nescalate_to = ["U0BOSS01"]\n',
    )
    big = policy.for_call("refund", {"amount": 500}, channel_id="C1").steps
    assert (big.remind_after, big.escalate_after, big.escalate_to) == (
        timedelta(minutes=10),
        timedelta(hours=1),
        ("U0BOSS01",),
    )
    small = policy.for_call("refund", {"amount": 5}, channel_id="C1").steps
    assert (small.remind_after, small.escalate_after, small.escalate_to) == (
        timedelta(minutes=10),
        timedelta(hours=2),
        ("S0ONCALL",),
    )
    other = policy.for_call("lookup", {}, channel_id="C1").steps
    assert other.remind_after == timedelta(minutes=30)


def test_no_keys_no_steps(tmp_path: Path) -> None:
    steps = _load(tmp_path, TOP).for_call("refund", {}, channel_id="C1").steps
    assert (steps.remind_after, steps.escalate_after, steps.escalate_to) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            'remind_after = "3h"\nescalate_after = "2h"\nescalate_to = ["S0ONCALL"]\n',
            "approvals.remind_after",
            "remind_after (3h) must be shorter than escalate_after (2h)",
        ),
        (
            'escalate_after = "2d"\nescalate_to = ["S0ONCALL"]\n',
            "approvals.escalate_after",
            "escalate_after (2d) must be shorter than expire_after (24h)",
        ),
        (
            'remind_after = "24h"\n',
            "approvals.remind_after",
            "remind_after (24h) must be shorter than expire_after (24h)",
        ),
        (
            'escalate_after = "2h"\n',
            "approvals.escalate_after",
            "escalate_after needs escalate_to",
        ),
        (
            'remind_after = "1h"\n[approvals.tools.refund]\nescalate_after = "30m"\n'
            'escalate_to = ["U0BOSS01"]\n',
            "approvals.tools.refund.escalate_after",
            "remind_after (1h) must be shorter than escalate_after (30m)",
        ),
        (
            '[approvals.tools.refund]\nescalate_after = "30m"\n',
            "approvals.tools.refund.escalate_after",
            "escalate_after needs escalate_to",
        ),
        (
            '[[approvals.rules]]\ntools = ["refund"]\nremind_after = "30h"\n',
            "approvals.rules.1.remind_after",
            "rule 1: remind_after (30h) must be shorter than expire_after (24h)",
        ),
        (
            'remind_after = "soon"\n',
            "approvals.remind_after",
            "not a duration",
        ),
        (
            'escalate_after = "1h"\nescalate_to = ["oncall"]\n',
            "approvals.escalate_to",
            "not a Slack user id",
        ),
    ],
    ids=[
        "remind_after_escalation",
        "escalate_after_expiry",
        "remind_at_expiry",
        "escalate_to_nobody",
        "tool_escalates_before_inherited_reminder",
        "tool_escalates_to_nobody",
        "rule_reminds_after_expiry",
        "bad_duration",
        "bad_id",
    ],
)
def test_steps_out_of_order_are_refused_naming_the_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    error = _error(tmp_path, TOP + text)
    assert error.key == key
    assert reason in error.reason


def test_an_inherited_problem_is_named_once_where_it_was_written(tmp_path: Path) -> None:
    error = _error(
        tmp_path, TOP + 'remind_after = "30h"\n[approvals.tools.refund]\nallow_edit = true\n'
    )
    assert error.key == "approvals.remind_after"

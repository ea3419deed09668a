"""Policy: which calls need a person and who that person is, from the admin's config."""

from datetime import timedelta
from typing import Any

import pytest

from bot.approvals.policy import Policy, ToolRule
from bot.config import ApprovalsConfig


def _approvals(**fields: Any) -> ApprovalsConfig:
    return ApprovalsConfig.model_validate(fields)


def test_default_always_needs_approval_for_unlisted_tools() -> None:
    policy = Policy.from_config(_approvals(default="always"))

    assert policy.needs_approval("anything") is True


def test_default_never_lets_unlisted_tools_run() -> None:
    policy = Policy.from_config(_approvals(default="never"))

    assert policy.needs_approval("anything") is False


def test_the_default_default_is_always() -> None:
    policy = Policy.from_config(ApprovalsConfig())

    assert policy.needs_approval("anything") is True


def test_per_tool_require_overrides_the_default() -> None:
    policy = Policy.from_config(
        _approvals(
            default="never",
            tools={"delete_customer": {"require": "always"}, "lookup_order": {"require": "never"}},
        )
    )

    assert policy.needs_approval("delete_customer") is True
    assert policy.needs_approval("lookup_order") is False
    assert policy.needs_approval("refund") is False


def test_per_tool_never_overrides_default_always() -> None:
    policy = Policy.from_config(
        _approvals(default="always", tools={"lookup_order": {"require": "never"}})
    )

    assert policy.needs_approval("lookup_order") is False
    assert policy.needs_approval("refund") is True


def test_a_listed_tool_requires_approval_unless_it_says_otherwise() -> None:
    policy = Policy.from_config(_approvals(default="never", tools={"refund": {}}))

    assert policy.needs_approval("refund") is True


def test_approvers_come_from_the_top_level_by_default() -> None:
    policy = Policy.from_config(_approvals(approvers=["U0ALICE", "S0ADMINS"]))

    assert policy.approvers_for("refund") == ("U0ALICE", "S0ADMINS")


def test_per_tool_approvers_override_the_top_level() -> None:
    policy = Policy.from_config(
        _approvals(
            approvers=["U0ALICE"],
            tools={"refund": {"approvers": ["U0BOB", "S0FINANCE"]}, "delete_customer": {}},
        )
    )

    assert policy.approvers_for("refund") == ("U0BOB", "S0FINANCE")
    assert policy.approvers_for("delete_customer") == ("U0ALICE",)
    assert policy.approvers_for("unlisted") == ("U0ALICE",)


def test_an_empty_per_tool_approver_list_means_nobody() -> None:
    policy = Policy.from_config(
        _approvals(approvers=["U0ALICE"], tools={"refund": {"approvers": []}})
    )

    assert policy.approvers_for("refund") == ()


def test_tool_defaults_apply_when_the_config_is_silent() -> None:
    policy = Policy.from_config(
        _approvals(default="always"),
        tool_defaults={"slack_post_message": True, "slack_lookup_user": False},
    )

    assert policy.needs_approval("slack_post_message") is True
    assert policy.needs_approval("slack_lookup_user") is False


def test_config_overrides_tool_defaults() -> None:
    policy = Policy.from_config(
        _approvals(
            default="always",
            tools={
                "slack_post_message": {"require": "never"},
                "slack_lookup_user": {"require": "always", "approvers": ["U0CAROL"]},
            },
        ),
        tool_defaults={"slack_post_message": True, "slack_lookup_user": False},
    )

    assert policy.needs_approval("slack_post_message") is False
    assert policy.needs_approval("slack_lookup_user") is True
    assert policy.approvers_for("slack_lookup_user") == ("U0CAROL",)


def test_policy_carries_self_approval_and_expiry() -> None:
    policy = Policy.from_config(_approvals(allow_self_approval=True, expire_after="90m"))

    assert policy.allow_self_approval is True
    assert policy.expire_after == timedelta(minutes=90)


def test_policy_defaults_refuse_self_approval_and_expire_after_a_day() -> None:
    policy = Policy.from_config(ApprovalsConfig())

    assert policy.allow_self_approval is False
    assert policy.expire_after == timedelta(hours=24)
    assert policy.approvers == ()


@pytest.mark.parametrize("default", ["always", "never"])
def test_needs_approval_always_returns_a_strict_bool(default: str) -> None:
    policy = Policy.from_config(
        _approvals(
            default=default,
            tools={"a": {"require": "always"}, "b": {"require": "never"}, "c": {}},
        ),
        tool_defaults={"d": True, "e": False},
    )

    for name in ("a", "b", "c", "d", "e", "unlisted", ""):
        assert type(policy.needs_approval(name)) is bool


def test_hand_built_policy_answers_per_rule() -> None:
    policy = Policy(default_required=False, rules={"x": ToolRule(required=True)})

    assert policy.needs_approval("x") is True
    assert policy.needs_approval("y") is False


def test_approvals_needed_comes_from_the_tools_table_and_is_one_elsewhere() -> None:
    policy = Policy.from_config(
        _approvals(tools={"refund": {"approvals_needed": 2}, "delete_customer": {}}),
        tool_defaults={"slack_post_message": True},
    )

    assert policy.for_call("refund", "{}", channel_id="C1").approvals_needed == 2
    assert policy.for_call("delete_customer", "{}", channel_id="C1").approvals_needed == 1
    assert policy.for_call("slack_post_message", "{}", channel_id="C1").approvals_needed == 1
    assert policy.for_call("unlisted", "{}", channel_id="C1").approvals_needed == 1

"""Rules deciding a call: every operator, argument paths, order, fallbacks, failing closed."""

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.approvals.policy import CallPolicy, Policy
from bot.approvals.rules import MATCH_LIMIT
from bot.config import ApprovalsConfig


def _policy(*rules: dict[str, Any], **approvals: Any) -> Policy:
    settings: dict[str, Any] = {"approvers": ["U0GLOBAL"], "default": "always"}
    settings.update(approvals)
    settings["rules"] = list(rules)
    return Policy.from_config(ApprovalsConfig.model_validate(settings))


def _decide(
    policy: Policy,
    arguments: dict[str, Any] | str,
    *,
    tool: str = "refund",
    channel: str | None = "C0PAYMENTS",
    requesters: list[str] | None = None,
    groups: dict[str, list[str]] | None = None,
) -> CallPolicy:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return policy.for_call(
        tool,
        raw,
        channel_id=channel,
        requesters=["U0ALICE"] if requesters is None else requesters,
        group_members={g: frozenset(m) for g, m in (groups or {}).items()},
    )


def _never_when(**when: Any) -> Policy:
    return _policy({"tools": ["refund"], "when": when, "require": "never"})


@pytest.mark.parametrize(
    ("condition", "value", "matched"),
    [
        ({"eq": "EUR"}, "EUR", True),
        ({"eq": "EUR"}, "USD", False),
        ({"eq": 5}, 5.0, True),
        ({"eq": True}, True, True),
        ({"ne": "EUR"}, "USD", True),
        ({"ne": "EUR"}, "EUR", False),
        ({"gt": 1000}, 1000.5, True),
        ({"gt": 1000}, 1000, False),
        ({"gte": 1000}, 1000, True),
        ({"gte": 1000}, 999, False),
        ({"lt": 50}, 49.99, True),
        ({"lt": 50}, 50, False),
        ({"lte": 50}, 50, True),
        ({"lte": 50}, 51, False),
        ({"in": ["EUR", "USD"]}, "USD", True),
        ({"in": ["EUR", "USD"]}, "GBP", False),
        ({"not_in": ["EUR", "USD"]}, "GBP", True),
        ({"not_in": ["EUR", "USD"]}, "EUR", False),
        ({"matches": "ORD-[0-9]+"}, "ORD-42", True),
        ({"matches": "ORD-[0-9]+"}, "ORD-42 and more", False),  # a full match, not a search
        ({"matches": "ORD-[0-9]+"}, "xORD-42", False),
        ({"exists": True}, "anything", True),
        ({"gt": 10, "lt": 20}, 15, True),  # every operator of a condition must hold
        ({"gt": 10, "lt": 20}, 25, False),
    ],
)
def test_each_operator(condition: dict[str, Any], value: Any, matched: bool) -> None:
    policy = _never_when(field=condition)

    decided = _decide(policy, {"field": value})

    assert decided.required is not matched
    assert decided.rule_index == (1 if matched else None)
    assert not decided.failed_closed


def test_a_path_reaches_into_objects() -> None:
    policy = _never_when(**{"customer.tier": {"eq": "gold"}})

    assert _decide(policy, {"customer": {"tier": "gold"}}).required is False
    assert _decide(policy, {"customer": {"tier": "free"}}).required is True


def test_exists_false_matches_an_absent_argument_and_a_path_through_a_non_object() -> None:
    policy = _never_when(**{"customer.tier": {"exists": False}})

    assert _decide(policy, {}).required is False
    assert _decide(policy, {"customer": "c42"}).required is False
    assert _decide(policy, {"customer": ["tier"]}).required is False
    assert _decide(policy, {"customer": {"tier": None}}).required is True  # given, as null


def test_all_conditions_of_a_rule_must_hold() -> None:
    policy = _never_when(amount={"lte": 50}, currency={"eq": "EUR"})

    assert _decide(policy, {"amount": 20, "currency": "EUR"}).required is False
    assert _decide(policy, {"amount": 20, "currency": "USD"}).required is True


def test_the_first_matching_rule_decides() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"gt": 1000}}, "approvers": ["S0FINANCE"]},
        {"tools": ["refund"], "when": {"amount": {"gt": 10}}, "require": "never"},
        {"tools": ["*"], "approvers": ["U0ANYONE"]},
        tools={"refund": {"require": "always"}},
    )

    large = _decide(policy, {"amount": 5000})
    medium = _decide(policy, {"amount": 20})
    small = _decide(policy, {"amount": 5})

    assert (large.required, large.approvers, large.rule_index) == (True, ("S0FINANCE",), 1)
    assert (medium.required, medium.rule_index) == (False, 2)
    assert (small.required, small.approvers, small.rule_index) == (True, ("U0ANYONE",), 3)


def test_a_rule_governs_only_its_tools() -> None:
    policy = _policy({"tools": ["refund"], "require": "never"})

    assert _decide(policy, {}, tool="refund").required is False
    assert _decide(policy, {}, tool="delete_customer").required is True


def test_what_a_rule_leaves_out_comes_from_the_tool_table_then_approvals() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"gt": 1000}}, "approvals_needed": 2},
        {"tools": ["delete_customer"], "allow_edit": True},
        approvers=["U0GLOBAL"],
        tools={
            "refund": {
                "require": "always",
                "approvers": ["S0FINANCE"],
                "allow_edit": True,
                "thread_approval_ttl": "2h",
            }
        },
    )

    refund = _decide(policy, {"amount": 5000})
    delete = _decide(policy, {}, tool="delete_customer")

    assert refund == CallPolicy(
        required=True,
        approvers=("S0FINANCE",),
        approvals_needed=2,
        allow_for_thread=False,
        thread_approval_ttl=timedelta(hours=2),
        allow_edit=True,
        rule_index=1,
        rule_label="rule 1: amount > 1000 → 2 approvals",
    )
    assert delete.approvers == ("U0GLOBAL",)
    assert delete.allow_edit is True
    assert delete.thread_approval_ttl == timedelta(hours=8)
    assert delete.rule_label == "rule 2 → 1 approval"


def test_no_rule_matching_leaves_the_tool_table_to_decide() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"gt": 1000}}},
        tools={"refund": {"require": "never"}},
    )

    decided = _decide(policy, {"amount": 20})

    assert decided.required is False
    assert decided.rule_index is None
    assert decided.rule_label == "[approvals.tools.refund] → runs without approval"


def test_the_label_reads_like_the_rule() -> None:
    policy = _policy(
        {
            "tools": ["refund"],
            "when": {
                "amount": {"gt": 1000},
                "currency": {"in": ["EUR", "USD"]},
                "note": {"matches": "urgent.*"},
            },
            "approvers": ["S0FINANCE"],
            "approvals_needed": 2,
        }
    )

    label = _decide(policy, {"amount": 5000, "currency": "EUR", "note": "urgent!"}).rule_label

    assert label == (
        'rule 1: amount > 1000, currency in ["EUR", "USD"], note matches urgent.* → 2 approvals'
    )


# --- channels and requesters ---------------------------------------------------------------


def test_channels_match_the_thread_channel() -> None:
    policy = _policy({"tools": ["refund"], "channels": ["C0PAYMENTS"], "require": "never"})

    assert _decide(policy, {}, channel="C0PAYMENTS").required is False
    assert _decide(policy, {}, channel="C0GENERAL").required is True


def test_requesters_match_any_requester_directly_or_through_a_group() -> None:
    policy = _policy(
        {"tools": ["refund"], "requesters": ["U0BOB", "S0SUPPORT"], "require": "never"}
    )
    groups = {"S0SUPPORT": ["U0CAROL"]}

    assert _decide(policy, {}, requesters=["U0ALICE", "U0BOB"], groups=groups).required is False
    assert _decide(policy, {}, requesters=["U0CAROL"], groups=groups).required is False
    assert _decide(policy, {}, requesters=["U0ALICE"], groups=groups).required is True


def test_a_requester_rule_asks_for_the_groups_it_names_only() -> None:
    policy = _policy(
        {"tools": ["refund"], "requesters": ["U0BOB", "S0SUPPORT"]},
        {"tools": ["delete_customer"], "channels": ["C0X1"]},
    )

    assert policy.asks_who_asked("refund") is True
    assert policy.groups_asked_about("refund") == ("S0SUPPORT",)
    assert policy.asks_who_asked("delete_customer") is False


# --- failing closed ------------------------------------------------------------------------


def _closed(decided: CallPolicy, reason: str) -> None:
    assert decided.required is True
    assert decided.failed_closed is True
    assert decided.rule_index is None
    assert reason in decided.rule_label


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"text"', '{"amount": NaN}', ""])
def test_arguments_that_are_not_a_json_object_need_approval_whatever_the_policy(
    raw: str,
) -> None:
    policy = _policy(tools={"refund": {"require": "never"}})

    _closed(_decide(policy, raw), "failed closed")


def test_a_missing_argument_fails_closed_even_where_rule_and_table_say_never() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"lte": 50}}, "require": "never"},
        tools={"refund": {"require": "never", "approvers": ["S0FINANCE"]}},
    )

    decided = _decide(policy, {"order_id": "o1"})

    _closed(decided, "rule 1: the call has no `amount`")
    assert decided.approvers == ("S0FINANCE",)  # the tool's approvers, else the global list


def test_a_string_compared_with_gt_fails_closed() -> None:
    _closed(_decide(_never_when(amount={"gt": 10}), {"amount": "5000"}), "`amount` is a string")


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ({"eq": "EUR"}, 5),
        ({"ne": 5}, "5"),
        ({"eq": 1}, True),
        ({"in": ["EUR"]}, 1),
        ({"in": [1, 2]}, True),
        ({"not_in": ["EUR"]}, None),
        ({"matches": ".*"}, 42),
        ({"lt": 5}, [1]),
    ],
)
def test_a_type_mismatch_fails_closed(condition: dict[str, Any], value: Any) -> None:
    _closed(_decide(_never_when(field=condition), {"field": value}), "rule 1")


def test_an_overlong_string_is_not_matched_and_fails_closed() -> None:
    policy = _never_when(note={"matches": "(a+)+b"})

    _closed(_decide(policy, {"note": "a" * (MATCH_LIMIT + 1)}), "longer than")


def test_an_unevaluable_condition_fails_closed_even_when_another_condition_is_false() -> None:
    policy = _never_when(amount={"lte": 50}, currency={"eq": "EUR"})

    _closed(_decide(policy, {"amount": 5000}), "no `currency`")


def test_a_rule_for_another_channel_is_not_asked_about_arguments() -> None:
    policy = _policy(
        {"tools": ["refund"], "channels": ["C0OTHER"], "when": {"currency": {"eq": "EUR"}}},
        tools={"refund": {"require": "never"}},
    )

    assert _decide(policy, {}, channel="C0PAYMENTS").required is False


def test_unknown_channel_or_requesters_fail_closed_for_rules_that_ask() -> None:
    by_channel = _policy({"tools": ["refund"], "channels": ["C0PAYMENTS"], "require": "never"})
    by_people = _policy({"tools": ["refund"], "requesters": ["U0ALICE"], "require": "never"})

    _closed(by_channel.for_call("refund", "{}", channel_id=None), "channel is unknown")
    _closed(by_people.for_call("refund", "{}", channel_id="C0X1"), "who asked")


def test_a_group_that_could_not_be_read_fails_closed_unless_someone_is_listed_directly() -> None:
    policy = _policy(
        {"tools": ["refund"], "requesters": ["U0BOB", "S0SUPPORT"], "require": "never"}
    )

    _closed(_decide(policy, {}, requesters=["U0CAROL"], groups={}), "S0SUPPORT")
    assert _decide(policy, {}, requesters=["U0BOB"], groups={}).required is False


def test_failing_closed_offers_nothing_a_rule_would_have_granted() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"lte": 50}}, "require": "never"},
        tools={"refund": {"allow_edit": True, "allow_for_thread": True}},
    )

    decided = _decide(policy, {})

    assert (decided.allow_edit, decided.allow_for_thread) == (False, False)


def test_a_tool_a_rule_governs_may_need_approval_even_if_its_table_says_never() -> None:
    policy = _policy(
        {"tools": ["refund"], "when": {"amount": {"gt": 1000}}},
        tools={"refund": {"require": "never"}, "lookup_order": {"require": "never"}},
    )

    assert policy.may_need_approval("refund") is True
    assert policy.may_need_approval("lookup_order") is False


def test_rule_approvers_count_as_approvers_of_something() -> None:
    policy = _policy({"tools": ["*"], "approvers": ["S0FINANCE"]}, approvers=["U0GLOBAL"])

    assert policy.every_approver() == ("U0GLOBAL", "S0FINANCE")

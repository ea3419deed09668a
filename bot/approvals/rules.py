"""`[[approvals.rules]]`: which rule governs a call, from its arguments, channel and requesters.

Pure: the caller looks up who asked and who is in which user group. Nothing a rule says is
run as code; each condition is one of a fixed set of comparisons on JSON values. A condition
that cannot be compared (an argument the call lacks, a string where a number is ordered, a
value of another type) raises `Unevaluable`, and the caller fails closed: a rule that cannot
say whether it matches must not let a call through.
"""

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.approvals.authorization import is_user_group
from bot.config import Condition, RuleConfig, parse_duration

# A regular expression is matched against at most this much text: an argument is untrusted,
# and a long one must not make a carelessly written pattern backtrack for minutes.
MATCH_LIMIT = 10_000

_SYMBOLS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "in",
    "not_in": "not in",
    "matches": "matches",
}


class Unevaluable(Exception):
    """A condition that cannot be decided for this call; `reason` names the argument path and
    what is wrong with it, never the argument's value (it is untrusted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Test:
    """One operator on one argument path; `value` is a compiled pattern for `matches`."""

    path: str
    operator: str
    value: Any

    def describe(self) -> str:
        if self.operator == "exists":
            return f"{self.path} is given" if self.value else f"{self.path} is not given"
        shown = self.value.pattern if self.operator == "matches" else self.value
        return f"{self.path} {_SYMBOLS[self.operator]} {_literal(shown)}"


@dataclass(frozen=True)
class Steps:
    """Reminders and escalation as one table says them; None is left out."""

    remind_after: timedelta | None = None
    escalate_after: timedelta | None = None
    escalate_to: tuple[str, ...] | None = None

    @classmethod
    def read(
        cls, remind_after: str | None, escalate_after: str | None, escalate_to: list[str] | None
    ) -> "Steps":
        return cls(
            remind_after=None if remind_after is None else parse_duration(remind_after),
            escalate_after=None if escalate_after is None else parse_duration(escalate_after),
            escalate_to=None if escalate_to is None else tuple(escalate_to),
        )

    def over(self, parent: "Steps") -> "Steps":
        """What is in force: these, and `parent` where these say nothing."""
        return Steps(
            remind_after=(
                self.remind_after if self.remind_after is not None else parent.remind_after
            ),
            escalate_after=(
                self.escalate_after if self.escalate_after is not None else parent.escalate_after
            ),
            escalate_to=self.escalate_to if self.escalate_to is not None else parent.escalate_to,
        )


@dataclass(frozen=True)
class Settings:
    """What a rule (or a tool's table) sets; None is left out, to be taken from further up."""

    require: bool | None = None
    approvers: tuple[str, ...] | None = None
    approvals_needed: int | None = None
    allow_for_thread: bool | None = None
    thread_approval_ttl: timedelta | None = None
    allow_edit: bool | None = None
    steps: Steps = field(default_factory=Steps)


@dataclass(frozen=True)
class CallRule:
    number: int  # 1-based, as the config's reader counts and errors name it
    tools: frozenset[str] | None  # None: every tool ("*")
    channels: frozenset[str] | None
    requesters: tuple[str, ...] | None
    tests: tuple[Test, ...]
    settings: Settings

    @classmethod
    def from_config(cls, number: int, rule: RuleConfig) -> "CallRule":
        ttl = rule.thread_approval_ttl
        return cls(
            number=number,
            tools=None if rule.tools == ["*"] else frozenset(rule.tools),
            channels=None if rule.channels is None else frozenset(rule.channels),
            requesters=None if rule.requesters is None else tuple(rule.requesters),
            tests=tuple(_tests(rule.when)),
            settings=Settings(
                require=None if rule.require is None else rule.require == "always",
                approvers=None if rule.approvers is None else tuple(rule.approvers),
                approvals_needed=rule.approvals_needed,
                allow_for_thread=rule.allow_for_thread,
                thread_approval_ttl=None if ttl is None else parse_duration(ttl),
                allow_edit=rule.allow_edit,
                steps=Steps.read(rule.remind_after, rule.escalate_after, rule.escalate_to),
            ),
        )

    def governs(self, tool_name: str) -> bool:
        return self.tools is None or tool_name in self.tools

    def conditions(self) -> str:
        """The rule's `when`, as a person reads it: "amount > 1000, currency in ["EUR"]"."""
        return ", ".join(test.describe() for test in self.tests)

    def matches(
        self,
        arguments: Mapping[str, Any],
        *,
        channel_id: str | None,
        requesters: Collection[str] | None,
        group_members: Mapping[str, Collection[str]],
    ) -> bool:
        """Channel and requesters first: a rule for another channel says nothing about this
        call, so its conditions are not asked. Then every condition, all of them, so that
        whether a call fails closed does not depend on the order they were written in.

        None for the channel or the requesters means unknown, and a rule that asks about
        them cannot be evaluated; so is a listed user group missing from `group_members`
        (its members could not be read)."""
        if self.channels is not None:
            if channel_id is None:
                raise Unevaluable("the call's channel is unknown")
            if channel_id not in self.channels:
                return False
        if self.requesters is not None:
            if requesters is None:
                raise Unevaluable("who asked for the call is unknown")
            if not _asked_by(self.requesters, requesters, group_members):
                return False
        results = [holds(test, arguments) for test in self.tests]
        return all(results)


def _tests(when: Mapping[str, Condition]) -> list[Test]:
    tests = []
    for path, condition in when.items():
        for operator, value in condition.operators().items():
            tests.append(
                Test(path, operator, re.compile(value) if operator == "matches" else value)
            )
    return tests


def _asked_by(
    listed: Sequence[str], requesters: Collection[str], group_members: Mapping[str, Collection[str]]
) -> bool:
    if any(slack_id in requesters for slack_id in listed):
        return True
    unread = []
    for group in (slack_id for slack_id in listed if is_user_group(slack_id)):
        members = group_members.get(group)
        if members is None:
            unread.append(group)
        elif any(person in members for person in requesters):
            return True
    if unread:
        raise Unevaluable(f"the members of user group {unread[0]} could not be read")
    return False


def parse_arguments(arguments: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The call's arguments as a JSON object, or Unevaluable: no rule can be read on anything
    else. NaN and Infinity are refused as the SDK refuses them."""
    if isinstance(arguments, Mapping):
        return arguments
    try:
        parsed = json.loads(arguments, parse_constant=_no_constant)
    except (ValueError, TypeError):
        raise Unevaluable("the call's arguments are not valid JSON") from None
    if not isinstance(parsed, dict):
        raise Unevaluable("the call's arguments are not a JSON object")
    return parsed


def _no_constant(name: str) -> Any:
    raise ValueError(name)


_ABSENT = object()


def _lookup(arguments: Mapping[str, Any], path: str) -> Any:
    """`customer.tier` reaches into objects; anything on the way that is not one is absent."""
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def holds(test: Test, arguments: Mapping[str, Any]) -> bool:
    value = _lookup(arguments, test.path)
    if test.operator == "exists":
        return (value is not _ABSENT) is test.value
    if value is _ABSENT:
        raise Unevaluable(f"the call has no `{test.path}`")
    kind = _kind(value)
    if test.operator in ("gt", "gte", "lt", "lte"):
        if kind != "number":
            raise Unevaluable(f"`{test.path}` is a {kind}, and `{test.operator}` orders numbers")
        return bool(_ORDER[test.operator](value, test.value))
    if test.operator == "matches":
        if kind != "string":
            raise Unevaluable(f"`{test.path}` is a {kind}, and `matches` reads strings")
        if len(value) > MATCH_LIMIT:
            raise Unevaluable(f"`{test.path}` is longer than {MATCH_LIMIT} characters")
        return test.value.fullmatch(value) is not None
    if test.operator in ("eq", "ne"):
        if kind != _kind(test.value):
            raise Unevaluable(f"`{test.path}` is a {kind}, compared with a {_kind(test.value)}")
        return (value == test.value) is (test.operator == "eq")
    # in / not_in: the value must be of a kind the list holds, or the answer means nothing.
    if kind not in {_kind(item) for item in test.value}:
        raise Unevaluable(f"`{test.path}` is a {kind}, and the list of `{test.operator}` has none")
    listed = any(_kind(item) == kind and item == value for item in test.value)
    return listed is (test.operator == "in")


_ORDER = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value and not any(c in value for c in " ,[]\"'"):
        return value
    return json.dumps(value, ensure_ascii=False)

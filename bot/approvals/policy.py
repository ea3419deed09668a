"""Which tool calls need a person, and which people: pure data in, pure data out.

A call is decided by the first of `[[approvals.rules]]` that governs its tool and matches it,
else by the tool's own table, else by `[approvals]`. What a rule leaves out comes from the
tool's table, then from `[approvals]`. Whatever cannot be read (arguments that are not a JSON
object, a condition that cannot be evaluated) needs approval: the policy fails closed.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.approvals.authorization import is_user_group
from bot.approvals.rules import CallRule, Steps, Unevaluable, parse_arguments
from bot.config import ApprovalsConfig, parse_duration

DEFAULT_THREAD_APPROVAL_TTL = timedelta(hours=8)


@dataclass(frozen=True)
class ToolRule:
    """A tool's own table, or a built-in tool's default."""

    required: bool
    approvers: tuple[str, ...] | None = None
    approvals_needed: int = 1
    allow_for_thread: bool = False
    thread_approval_ttl: timedelta = DEFAULT_THREAD_APPROVAL_TTL
    allow_edit: bool = False
    steps: Steps = field(default_factory=Steps)
    label: str = ""  # where it comes from, for the card: "[approvals.tools.refund]"


@dataclass(frozen=True)
class CallPolicy:
    """What one call needs, and what decided it (recorded with the approval, shown on the
    card). `rule_label` is plain text from the config; whoever renders it escapes it."""

    required: bool
    approvers: tuple[str, ...]
    approvals_needed: int
    allow_for_thread: bool
    thread_approval_ttl: timedelta
    allow_edit: bool
    rule_index: int | None  # the deciding rule's number (from 1); None: a table decided
    rule_label: str
    failed_closed: bool = False
    # When to remind the approvers, and to escalate to whom; every key set (the config
    # refuses an escalation without anyone to escalate to).
    steps: Steps = field(default_factory=Steps)


def outcome_text(required: bool, approvals_needed: int) -> str:
    if not required:
        return "→ runs without approval"
    return f"→ {approvals_needed} approval{'s' if approvals_needed != 1 else ''}"


@dataclass(frozen=True)
class Policy:
    default_required: bool = True
    approvers: tuple[str, ...] = ()
    allow_self_approval: bool = False
    expire_after: timedelta = timedelta(hours=24)
    rules: Mapping[str, ToolRule] = field(default_factory=dict)
    call_rules: tuple[CallRule, ...] = ()
    steps: Steps = field(default_factory=Steps)

    @classmethod
    def from_config(
        cls, config: ApprovalsConfig, *, tool_defaults: Mapping[str, bool] | None = None
    ) -> "Policy":
        """Build the policy; `tool_defaults` lets a built-in tool say whether it is sensitive."""
        rules = {
            name: ToolRule(required=required, label=f"built-in default of {name}")
            for name, required in (tool_defaults or {}).items()
        }
        for name, tool in config.tools.items():
            rules[name] = ToolRule(
                required=tool.require == "always",
                approvers=tuple(tool.approvers) if tool.approvers is not None else None,
                approvals_needed=tool.approvals_needed,
                allow_for_thread=tool.allow_for_thread,
                thread_approval_ttl=parse_duration(tool.thread_approval_ttl),
                allow_edit=tool.allow_edit,
                steps=Steps.read(tool.remind_after, tool.escalate_after, tool.escalate_to),
                label=f"[approvals.tools.{name}]",
            )
        return cls(
            default_required=config.default == "always",
            approvers=tuple(config.approvers),
            allow_self_approval=config.allow_self_approval,
            expire_after=config.expiry,
            steps=Steps.read(
                config.remind_after, config.escalate_after, config.escalate_to or None
            ),
            rules=rules,
            call_rules=tuple(
                CallRule.from_config(number, rule)
                for number, rule in enumerate(config.rules, start=1)
            ),
        )

    def table(self, tool_name: str) -> ToolRule:
        """The tool's own table, or `[approvals]` standing in for a tool it does not list."""
        rule = self.rules.get(tool_name)
        if rule is not None:
            return rule
        return ToolRule(required=self.default_required, label="[approvals] default")

    def needs_approval(self, tool_name: str) -> bool:
        """The tool's table alone, before any rule: what a call with no rule matching needs."""
        return self.table(tool_name).required

    def approvers_for(self, tool_name: str) -> tuple[str, ...]:
        rule = self.rules.get(tool_name)
        if rule is not None and rule.approvers is not None:
            return rule.approvers
        return self.approvers

    def every_approver(self) -> tuple[str, ...]:
        """Everyone listed as an approver of anything, the global list first, each id once."""
        ids = list(self.approvers)
        for rule in self.rules.values():
            ids.extend(rule.approvers or ())
        for call_rule in self.call_rules:
            ids.extend(call_rule.settings.approvers or ())
        return tuple(dict.fromkeys(ids))

    def rules_for(self, tool_name: str) -> tuple[CallRule, ...]:
        return tuple(rule for rule in self.call_rules if rule.governs(tool_name))

    def may_need_approval(self, tool_name: str) -> bool:
        """Could any call of this tool need approval? Its table, or any rule that governs it
        (a rule may ask for approval, or fail closed)."""
        return self.needs_approval(tool_name) or bool(self.rules_for(tool_name))

    def asks_who_asked(self, tool_name: str) -> bool:
        """Does deciding a call of this tool need the run's requesters?"""
        return any(rule.requesters is not None for rule in self.rules_for(tool_name))

    def groups_asked_about(self, tool_name: str) -> tuple[str, ...]:
        """The user groups whose members the rules for this tool ask about."""
        ids = [
            slack_id
            for rule in self.rules_for(tool_name)
            for slack_id in rule.requesters or ()
            if is_user_group(slack_id)
        ]
        return tuple(dict.fromkeys(ids))

    def for_call(
        self,
        tool_name: str,
        arguments: str | Mapping[str, Any],
        *,
        channel_id: str | None,
        requesters: Collection[str] | None = None,
        group_members: Mapping[str, Collection[str]] | None = None,
    ) -> CallPolicy:
        """Decide one call. `requesters` are everyone who asked (None: unknown);
        `group_members` holds the members of `groups_asked_about`. What a rule asks about and
        is unknown fails closed, like a condition that cannot be evaluated."""
        table = self.table(tool_name)
        try:
            parsed = parse_arguments(arguments)
        except Unevaluable as exc:
            return self._closed(tool_name, table, exc.reason)
        for rule in self.rules_for(tool_name):
            try:
                matched = rule.matches(
                    parsed,
                    channel_id=channel_id,
                    requesters=requesters,
                    group_members=group_members or {},
                )
            except Unevaluable as exc:
                return self._closed(tool_name, table, f"rule {rule.number}: {exc.reason}")
            if matched:
                return self._by_rule(tool_name, rule, table)
        return self._by_table(tool_name, table)

    def _by_rule(self, tool_name: str, rule: CallRule, table: ToolRule) -> CallPolicy:
        said = rule.settings
        required = table.required if said.require is None else said.require
        needed = table.approvals_needed if said.approvals_needed is None else said.approvals_needed
        conditions = rule.conditions()
        head = f"rule {rule.number}" + (f": {conditions}" if conditions else "")
        return CallPolicy(
            required=required,
            approvers=said.approvers
            if said.approvers is not None
            else self.approvers_for(tool_name),
            approvals_needed=needed,
            allow_for_thread=_either(said.allow_for_thread, table.allow_for_thread),
            thread_approval_ttl=said.thread_approval_ttl or table.thread_approval_ttl,
            allow_edit=_either(said.allow_edit, table.allow_edit),
            rule_index=rule.number,
            rule_label=f"{head} {outcome_text(required, needed)}",
            steps=said.steps.over(table.steps).over(self.steps),
        )

    def _by_table(self, tool_name: str, table: ToolRule) -> CallPolicy:
        return CallPolicy(
            required=table.required,
            approvers=self.approvers_for(tool_name),
            approvals_needed=table.approvals_needed,
            allow_for_thread=table.allow_for_thread,
            thread_approval_ttl=table.thread_approval_ttl,
            allow_edit=table.allow_edit,
            rule_index=None,
            rule_label=f"{table.label} {outcome_text(table.required, table.approvals_needed)}",
            steps=table.steps.over(self.steps),
        )

    def _closed(self, tool_name: str, table: ToolRule, reason: str) -> CallPolicy:
        """Approval needed, by the tool's own approvers; nothing a rule would have granted
        (a thread approval, an edit) is offered on a call nobody could read."""
        return CallPolicy(
            required=True,
            approvers=self.approvers_for(tool_name),
            approvals_needed=table.approvals_needed,
            allow_for_thread=False,
            thread_approval_ttl=table.thread_approval_ttl,
            allow_edit=False,
            rule_index=None,
            rule_label=f"failed closed ({reason}) {outcome_text(True, table.approvals_needed)}",
            failed_closed=True,
            steps=table.steps.over(self.steps),
        )


def _either(said: bool | None, otherwise: bool) -> bool:
    return otherwise if said is None else said

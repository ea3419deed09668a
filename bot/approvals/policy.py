"""Which tool calls need a person, and which people: pure data in, pure data out."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from bot.config import ApprovalsConfig


@dataclass(frozen=True)
class ToolRule:
    required: bool
    approvers: tuple[str, ...] | None = None
    approvals_needed: int = 1


@dataclass(frozen=True)
class Policy:
    default_required: bool = True
    approvers: tuple[str, ...] = ()
    allow_self_approval: bool = False
    expire_after: timedelta = timedelta(hours=24)
    rules: Mapping[str, ToolRule] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: ApprovalsConfig, *, tool_defaults: Mapping[str, bool] | None = None
    ) -> "Policy":
        """Build the policy; `tool_defaults` lets a built-in tool say whether it is sensitive."""
        rules = {
            name: ToolRule(required=required) for name, required in (tool_defaults or {}).items()
        }
        for name, tool in config.tools.items():
            rules[name] = ToolRule(
                required=tool.require == "always",
                approvers=tuple(tool.approvers) if tool.approvers is not None else None,
                approvals_needed=tool.approvals_needed,
            )
        return cls(
            default_required=config.default == "always",
            approvers=tuple(config.approvers),
            allow_self_approval=config.allow_self_approval,
            expire_after=config.expiry,
            rules=rules,
        )

    def needs_approval(self, tool_name: str) -> bool:
        rule = self.rules.get(tool_name)
        return self.default_required if rule is None else rule.required

    def every_approver(self) -> tuple[str, ...]:
        """Everyone listed as an approver of anything, the global list first, each id once."""
        ids = list(self.approvers)
        for rule in self.rules.values():
            ids.extend(rule.approvers or ())
        return tuple(dict.fromkeys(ids))

    def approvers_for(self, tool_name: str) -> tuple[str, ...]:
        rule = self.rules.get(tool_name)
        if rule is not None and rule.approvers is not None:
            return rule.approvers
        return self.approvers

    def approvals_needed_for(self, tool_name: str) -> int:
        """How many distinct people must approve a call before it runs, fixed when it pauses."""
        rule = self.rules.get(tool_name)
        return 1 if rule is None else rule.approvals_needed

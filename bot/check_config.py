"""`python -m bot check-config [FILE]`: is this config good to deploy, and what does it mean?

The file goes through what start-up does with it (the TOML, every table, the tool modules
imported, the policy's tool names), without Slack or a database, and the effective policy of
each tool is printed: what a call gets when no rule matches, then the rules checked before
that, in order; then the same for each `[workspaces.T…]` table, as that workspace's effective
config. The printer walks the fields of the policy's own data, so a setting added
there shows here without being listed again.
"""

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

from bot.agent.build import check_policy_tools, load_tool_modules
from bot.agent.builtin_tools import SENSITIVE
from bot.approvals.policy import Policy
from bot.approvals.rules import CallRule
from bot.config import AgentConfig, Config, load_config

# Field names of the policy's data that the config spells otherwise.
_CONFIG_NAMES = {"required": "require"}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def check(path: Path | None) -> list[str]:
    """The report, line by line; a config start-up would refuse raises its `ConfigError`."""
    config = load_config(path)
    tools: dict[str, str] = {
        name: "" for name in load_tool_modules(config.tools.modules, config_path=path)
    }
    for name in config.tools.builtins:
        tools[name] = "built-in"
    # A tool only an MCP server offers is known once the bot connects: named, it is shown.
    check_policy_tools(config, tools, config_path=path, elsewhere=bool(config.tools.mcp))
    lines = list(_report(path, config, _policy(config), tools))
    for team_id, own in config.workspaces.items():
        effective_config = config.for_team(team_id)
        replaced = [name for name in ("agent", "approvals", "admin") if getattr(own, name)]
        lines += [
            "",
            f"[workspaces.{team_id}]: "
            + (", ".join(f"[{name}]" for name in replaced) or "nothing")
            + " of its own; the rest is the top level's",
        ]
        if own.agent is not None:
            lines.append("[agent] " + _agent_settings(own.agent))
        lines += _policy_report(effective_config, _policy(effective_config), tools)
    return lines


def _agent_settings(agent: AgentConfig) -> str:
    """Its settings but the instructions and the prompts' text, which are prose."""
    values = agent.model_dump(exclude={"instructions", "suggested_prompts"})
    values["suggested_prompts"] = tuple(prompt.title for prompt in agent.suggested_prompts)
    if values["suggested_prompts_title"] is None:
        del values["suggested_prompts_title"]
    return _settings(values)


def _policy(config: Config) -> Policy:
    return Policy.from_config(
        config.approvals, tool_defaults={name: SENSITIVE[name] for name in config.tools.builtins}
    )


def _report(
    path: Path | None, config: Config, policy: Policy, tools: Mapping[str, str]
) -> Iterator[str]:
    yield f"config {path if path is not None else '(none: every default)'}: valid"
    for server in config.tools.mcp:
        where = "stdio" if server.command else "http"
        offered = ", ".join(server.tools) if server.tools else "every tool it lists"
        yield f"[[tools.mcp]] {server.name} ({where}): {offered}"
    yield from _policy_report(config, policy, tools)


def _policy_report(config: Config, policy: Policy, tools: Mapping[str, str]) -> Iterator[str]:
    """The approvals and admins in force, and each tool's effective policy."""
    yield "[approvals] " + _settings(
        {
            "default": "always" if policy.default_required else "never",
            "approvers": policy.approvers,
            "allow_self_approval": policy.allow_self_approval,
            "expire_after": policy.expire_after,
        }
        | ({"mirror_to": config.approvals.mirror_to} if config.approvals.mirror_to else {})
    )
    yield "[admin] " + _settings({"users": tuple(config.admin.users)})
    names = list(dict.fromkeys([*tools, *policy.rules]))
    yield f"{len(names)} tool{'s' if len(names) != 1 else ''}"
    for name in names:
        yield ""
        yield name + (f" ({tools[name]})" if tools.get(name) else "")
        table = policy.table(name)
        yield f"  when no rule matches ({table.label}):"
        for key, value in effective(policy, name).items():
            yield f"    {key} = {_value(value)}"
        rules = policy.rules_for(name)
        if rules:
            yield "  rules, checked first in order (the first match decides; the rest is above):"
            yield from (f"    {rule_line(rule)}" for rule in rules)


def effective(policy: Policy, tool_name: str) -> dict[str, object]:
    """What a call of the tool gets when no rule matches, by config key: its own table (or
    `[approvals]` for it), with the approvers and expiry it falls back to."""
    table = policy.table(tool_name)
    values = _by_config_key(
        {field.name: getattr(table, field.name) for field in dataclasses.fields(table)}
    )
    del values["label"]
    # What the table leaves out of reminders and escalation, `[approvals]` says.
    values.update(_by_config_key({"steps": table.steps.over(policy.steps)}))
    values["approvers"] = policy.approvers_for(tool_name)
    values["expire_after"] = policy.expire_after
    return values


def rule_line(rule: CallRule) -> str:
    scope = []
    if rule.channels is not None:
        scope.append("in " + ", ".join(sorted(rule.channels)))
    if rule.requesters is not None:
        scope.append("asked by " + ", ".join(rule.requesters))
    if rule.tests:
        scope.append("when " + rule.conditions())
    said = _by_config_key(
        {
            field.name: getattr(rule.settings, field.name)
            for field in dataclasses.fields(rule.settings)
        }
    )
    sets = _settings({key: value for key, value in said.items() if value is not None})
    return (
        f"rule {rule.number}"
        + (f" ({', '.join(scope)})" if scope else " (every call)")
        + ": "
        + (sets or "nothing of its own")
    )


def _by_config_key(values: Mapping[str, object]) -> dict[str, object]:
    """The policy's fields named and valued as the config writes them (`require = "always"`);
    a group of settings (reminders and escalation) is spelled as its keys, those set."""
    named: dict[str, object] = {}
    for name, value in values.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                inner = getattr(value, field.name)
                if inner is not None:
                    named[_CONFIG_NAMES.get(field.name, field.name)] = inner
        else:
            named[_CONFIG_NAMES.get(name, name)] = value
    if isinstance(named.get("require"), bool):
        named["require"] = "always" if named["require"] else "never"
    return named


def _settings(values: Mapping[str, object]) -> str:
    return ", ".join(f"{key} = {_value(value)}" for key, value in values.items())


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, tuple | list | frozenset | set):
        return "[" + ", ".join(_quoted(item) for item in value) + "]"
    return str(value)


def _quoted(item: object) -> str:
    return f'"{item}"' if isinstance(item, str) else _value(item)


def _duration(span: timedelta) -> str:
    """As the config writes it: "8h", "30m", "7d"."""
    seconds = int(span.total_seconds())
    for unit, size in _UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

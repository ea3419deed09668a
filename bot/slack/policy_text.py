"""The policy in force, as `/threadgate policy` says it privately: the tools, the approval rules
in order, and who approves what. The config is the admin's, but its labels and conditions are
escaped like any text that is not the bot's own."""

from collections.abc import Sequence

from bot.agent.mcp_servers import McpServerStatus
from bot.approvals.policy import Policy
from bot.approvals.rules import CallRule
from bot.slack.blocks import duration, escape, mention


def policy_text(
    policy: Policy, tools: Sequence[str], servers: Sequence[McpServerStatus] = ()
) -> str:
    """`servers` are the MCP servers: a server that is down has its tools missing from
    `tools` (and from runs) until it answers, which is said here."""
    lines = ["Tools: " + (", ".join(f"`{escape(t, 200)}`" for t in tools) or "none")]
    lines.extend(server_text(server) for server in servers)
    if policy.call_rules:
        lines.append(
            "Rules, checked in order before each tool's own policy (the first match decides):"
        )
        lines.extend(rule_text(rule) for rule in policy.call_rules)
    for name in tools:
        if policy.needs_approval(name):
            who = ", ".join(mention(a) for a in policy.approvers_for(name)) or "nobody"
            lines.append(f"• `{escape(name, 200)}` needs approval by {who}")
        else:
            lines.append(f"• `{escape(name, 200)}` runs without approval unless a rule says so")
    self_approval = "may" if policy.allow_self_approval else "may not"
    lines.append(
        f"Requests expire after {duration(policy.expire_after)}; whoever asked for a call "
        f"{self_approval} approve it."
    )
    return "\n".join(lines)


def server_text(server: McpServerStatus) -> str:
    name = f"MCP server `{escape(server.name, 100)}` ({server.transport})"
    if server.state == "up":
        line = f"{name} is up: {len(server.tools)} tool{'s' if len(server.tools) != 1 else ''}"
        if server.withheld:
            withheld = ", ".join(f"`{escape(t, 200)}`" for t in server.withheld)
            line += f"; not offered, as another source has the name: {withheld}"
        return line
    if server.state == "starting":
        return f"{name} is starting: its tools are missing until it answers"
    problem = f" ({escape(server.problem, 200)})" if server.problem else ""
    return f"{name} is down{problem}: its tools are missing until it answers"


def rule_text(rule: CallRule) -> str:
    """One rule on one line, as written in the config; what it leaves out is said to come
    from the tool's own policy."""
    tools = (
        "every tool"
        if rule.tools is None
        else ", ".join(f"`{escape(t, 200)}`" for t in sorted(rule.tools))
    )
    scope = [tools]
    if rule.channels is not None:
        scope.append("in " + ", ".join(f"<#{c}>" for c in sorted(rule.channels)))
    if rule.requesters is not None:
        scope.append("asked by " + ", ".join(mention(r) for r in rule.requesters))
    if rule.tests:
        scope.append("when " + escape(rule.conditions(), 1000))
    said = rule.settings
    effect = []
    if said.require is not None:
        effect.append("needs approval" if said.require else "runs without approval")
    if said.approvals_needed is not None:
        effect.append(
            f"{said.approvals_needed} approval{'s' if said.approvals_needed != 1 else ''}"
        )
    if said.approvers is not None:
        effect.append("from " + (", ".join(mention(a) for a in said.approvers) or "nobody"))
    if said.allow_for_thread is not None:
        effect.append(f"allow_for_thread = {str(said.allow_for_thread).lower()}")
    if said.thread_approval_ttl is not None:
        effect.append(f"thread approvals last {duration(said.thread_approval_ttl)}")
    if said.allow_edit is not None:
        effect.append(f"allow_edit = {str(said.allow_edit).lower()}")
    if not effect:
        effect.append("as the tool's own policy says")
    return f"{rule.number}. " + " ".join(scope) + " → " + ", ".join(effect)

"""`python -m bot check-config [FILE]` as an admin runs it before a deploy: a real process with
no Slack settings and no database, reading a real file."""

import asyncio
import os
import sys
from pathlib import Path

from tests.bot_process import ROOT

CONFIG = """
[tools]
modules = ["tests.tools_for_tests"]
builtins = ["slack_lookup_user"]

[approvals]
approvers = ["UAPPROVER1", "SAPPROVERS"]
expire_after = "12h"

[approvals.tools.refund]
approvers = ["UFINANCE01"]
allow_edit = true

[approvals.tools.lookup_order]
require = "never"

[[approvals.rules]]
tools = ["refund"]
channels = ["C0FINANCE"]
when = { amount = { gt = 1000 } }
approvals_needed = 2

[admin]
users = ["U0ADMIN01", "S0ADMINS"]
"""


async def check_config(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Only what any shell has: no Slack token, no signing secret, no database."""
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check-config",
        *args,
        cwd=tmp_path,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def tool_block(report: str, name: str) -> list[str]:
    """The lines about one tool, from its name to the blank line after it."""
    lines = report.splitlines()
    start = lines.index(name)
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start + 1 : end]


async def test_a_valid_file_prints_the_effective_policy_of_each_tool(tmp_path: Path) -> None:
    path = tmp_path / "threadgate.toml"
    path.write_text(CONFIG)

    code, out, err = await check_config(tmp_path, str(path))

    assert (code, err) == (0, "")
    assert out.startswith(f"config {path}: valid\n")
    assert (
        '[approvals] default = always, approvers = ["UAPPROVER1", "SAPPROVERS"], '
        "allow_self_approval = false, expire_after = 12h\n" in out
    )
    assert '[admin] users = ["U0ADMIN01", "S0ADMINS"]\n' in out
    assert "5 tools\n" in out
    assert tool_block(out, "refund") == [
        "  when no rule matches ([approvals.tools.refund]):",
        "    require = always",
        '    approvers = ["UFINANCE01"]',
        "    approvals_needed = 1",
        "    allow_for_thread = false",
        "    thread_approval_ttl = 8h",
        "    allow_edit = true",
        "    expire_after = 12h",
        "  rules, checked first in order (the first match decides; the rest is above):",
        "    rule 1 (in C0FINANCE, when amount > 1000): approvals_needed = 2",
    ]
    lookup = tool_block(out, "lookup_order")
    assert "    require = never" in lookup
    assert not any(line.startswith("    rule ") for line in lookup)
    assert '    approvers = ["UAPPROVER1", "SAPPROVERS"]' in tool_block(out, "delete_customer")
    builtin = tool_block(out, "slack_lookup_user (built-in)")
    assert builtin[0] == "  when no rule matches (built-in default of slack_lookup_user):"


async def test_without_a_file_argument_the_configured_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "configured.toml"
    path.write_text(CONFIG)

    code, out, _ = await check_config(tmp_path, env={"THREADGATE_CONFIG": str(path)})
    assert code == 0
    assert out.startswith(f"config {path}: valid\n")

    (tmp_path / ".env").write_text(f"THREADGATE_CONFIG={path}\n")  # as the bot reads it
    code, out, _ = await check_config(tmp_path)
    assert code == 0
    assert out.startswith(f"config {path}: valid\n")


async def test_an_invalid_file_gets_start_ups_one_line_error_and_exit_2(tmp_path: Path) -> None:
    cases = {
        "typo.toml": (
            CONFIG.replace("allow_edit = true", "allow_edits = true"),
            "approvals.tools.refund.allow_edits: unknown key",
        ),
        "unknown_tool.toml": (
            CONFIG + '\n[approvals.tools.refnud]\nrequire = "never"\n',
            "approvals.tools.refnud: no loaded tool has this name "
            "(check [tools] modules, builtins and mcp)",
        ),
        "module.toml": (
            CONFIG.replace('"tests.tools_for_tests"', '"no_such_tools"'),
            "tools.modules.0: cannot import 'no_such_tools': No module named 'no_such_tools'",
        ),
    }
    for name, (text, error) in cases.items():
        path = tmp_path / name
        path.write_text(text)

        code, out, err = await check_config(tmp_path, str(path))

        assert (code, out) == (2, ""), name
        assert err == f"threadgate: config {path}: {error}\n"

    code, out, err = await check_config(tmp_path, str(tmp_path / "missing.toml"))
    assert (code, out, err) == (
        2,
        "",
        f"threadgate: config {tmp_path}/missing.toml: (file): file not found\n",
    )
    code, _, err = await check_config(tmp_path, "a.toml", "b.toml")
    assert code == 2
    assert err.startswith("usage: python -m bot [")
    assert "check-config [FILE]" in err


async def test_reminders_the_mirror_and_mcp_servers_are_shown(tmp_path: Path) -> None:
    config = tmp_path / "threadgate.toml"
    config.write_text(
        CONFIG.replace(
            'expire_after = "12h"',
            'expire_after = "12h"\nmirror_to = "C0APPROVALS"\nremind_after = "30m"',
        ).replace(
            "approvals_needed = 2",
            'approvals_needed = 2\nescalate_after = "2h"\nescalate_to = ["S0ONCALL"]',
        )
        + '\n[[tools.mcp]]\nname = "tickets"\ncommand = ["python", "-m", "tickets"]\n'
        + 'tools = ["close_ticket"]\n'
        + '\n[approvals.tools.close_ticket]\napprovers = ["UAPPROVER1"]\n'
    )
    code, out, err = await check_config(tmp_path, str(config))
    assert code == 0, err
    assert "mirror_to = C0APPROVALS" in out
    assert "[[tools.mcp]] tickets (stdio): close_ticket" in out
    refund = tool_block(out, "refund")
    assert "    remind_after = 30m" in refund
    rule = next(line for line in refund if line.startswith("    rule 1"))
    assert 'escalate_after = 2h, escalate_to = ["S0ONCALL"]' in rule
    assert "Steps(" not in out
    # A tool only the MCP server offers is shown with the policy a table gives it.
    assert '    approvers = ["UAPPROVER1"]' in tool_block(out, "close_ticket")


async def test_each_workspace_table_gets_a_section_of_its_effective_policy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "threadgate.toml"
    path.write_text(
        CONFIG
        + """
[workspaces.T0BETA1.approvals]
approvers = ["UBETA0001"]

[[workspaces.T0BETA1.approvals.rules]]
tools = ["refund"]
approvals_needed = 3
"""
    )

    code, out, err = await check_config(tmp_path, str(path))

    assert (code, err) == (0, "")
    top, beta = out.split("\n\n[workspaces.")
    assert '[approvals] default = always, approvers = ["UAPPROVER1", "SAPPROVERS"]' in top
    assert beta.startswith("T0BETA1]: [approvals] of its own; the rest is the top level's\n")
    assert '[approvals] default = always, approvers = ["UBETA0001"]' in beta
    assert '[admin] users = ["U0ADMIN01", "S0ADMINS"]' in beta  # the top level's
    assert "rule 1 (every call): approvals_needed = 3" in beta
    assert "C0FINANCE" not in beta  # its rules replace the top level's


async def test_a_workspace_agent_is_shown_in_its_section(tmp_path: Path) -> None:
    path = tmp_path / "threadgate.toml"
    path.write_text(
        CONFIG
        + """
[workspaces.T0BETA1.agent]
name = "beta-helper"
instructions = "Answer in French."
model = "gpt-4.1"
stream = false

[[workspaces.T0BETA1.agent.suggested_prompts]]
title = "Open tickets"
message = "Which tickets are open?"
"""
    )

    code, out, err = await check_config(tmp_path, str(path))

    assert (code, err) == (0, "")
    top, beta = out.split("\n\n[workspaces.")
    assert "beta-helper" not in top
    assert beta.startswith("T0BETA1]: [agent] of its own; the rest is the top level's\n")
    [agent] = [line for line in beta.splitlines() if line.startswith("[agent] ")]
    assert agent == (
        "[agent] name = beta-helper, model = gpt-4.1, api = responses, max_turns = 10, "
        "history_limit = 100, stream = false, max_file_bytes = 100000, accepts_images = true, "
        'max_image_bytes = 1000000, suggested_prompts = ["Open tickets"]'
    )
    assert "French" not in out  # instructions are prose, not settings
    assert '[approvals] default = always, approvers = ["UAPPROVER1", "SAPPROVERS"]' in beta


async def test_a_bad_workspace_table_is_named_by_its_key(tmp_path: Path) -> None:
    path = tmp_path / "threadgate.toml"
    for table, key in {
        '[workspaces.lowercase]\nadmin = { users = ["U0ADMIN01"] }\n': "workspaces.lowercase",
        '[workspaces.T0BETA1.approvals]\nexpire_after = "soon"\n': (
            "workspaces.T0BETA1.approvals.expire_after"
        ),
        '[[workspaces.T0BETA1.approvals.rules]]\ntools = ["no_such_tool"]\n': (
            "workspaces.T0BETA1.approvals.rules.1.tools.0"
        ),
        "[workspaces.T0BETA1]\nstorage = {}\n": "workspaces.T0BETA1.storage",
        "[workspaces.T0BETA1.agent]\nmax_turns = 0\n": "workspaces.T0BETA1.agent.max_turns",
    }.items():
        path.write_text(CONFIG + table)

        code, _, err = await check_config(tmp_path, str(path))

        assert code == 2, table
        assert f": {key}: " in err, (table, err)

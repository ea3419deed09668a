"""The admin's TOML file, and the tool modules it names: every mistake stops start-up clearly."""

import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.agent.build import check_policy_tools, load_tool_modules
from bot.config import Config, ConfigError, load_config, parse_duration

FULL_EXAMPLE = """\
[agent]
name = "helper"
instructions = "Be brief."
model = "gpt-4.1"
api = "chat_completions"
max_turns = 12
history_limit = 200

[tools]
modules = ["company.tools", "company.more_tools"]
builtins = ["slack_post_message", "slack_lookup_user"]

[approvals]
approvers = ["U024BE7LH", "S0ADMINS", "W0ENTERPRISE"]
allow_self_approval = false
expire_after = "24h"
default = "always"

[approvals.tools.lookup_order]
require = "never"

[approvals.tools.refund]
require = "always"
approvers = ["S0FINANCE"]

[storage]
retain_days = 30
purge_history = true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "threadgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    return caught.value


# load_config


def test_no_file_means_every_default() -> None:
    config = load_config(None)

    assert config == Config()
    assert config.approvals.default == "always"
    assert config.approvals.expiry == timedelta(hours=24)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert "not found" in caught.value.reason


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, "[agent\nname = ")

    assert error.key == ""
    assert "not valid TOML" in error.reason


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[agent]\nname = "caf\xe9"\n'.encode("latin-1"))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "UTF-8" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1\n", "bogus"),
        ("[agent]\nnmae = 'typo'\n", "agent.nmae"),
        ("[approvals.tools.refund]\nrequires = 'never'\n", "approvals.tools.refund.requires"),
        ("[approvals]\ndefualt = 'never'\n", "approvals.defualt"),
        ("[tools]\nmodule = ['x']\n", "tools.module"),
        ("[storage]\nretain = 3\n", "storage.retain"),
    ],
    ids=["top", "agent", "approvals_tool", "approvals", "tools", "storage"],
)
def test_unknown_keys_are_refused_with_their_dotted_path(
    tmp_path: Path, text: str, key: str
) -> None:
    error = _error(tmp_path, text)

    assert error.key == key
    assert error.reason == "unknown key"
    assert f"{key}: unknown key" in str(error)


@pytest.mark.parametrize(
    ("duration", "reason"),
    [("soon", "not a duration"), ("0h", "longer than zero"), ("-1h", "not a duration")],
)
def test_bad_expiry_durations_are_refused(tmp_path: Path, duration: str, reason: str) -> None:
    error = _error(tmp_path, f'[approvals]\nexpire_after = "{duration}"\n')

    assert error.key == "approvals.expire_after"
    assert reason in error.reason


def test_malformed_approver_id_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, '[approvals]\napprovers = ["U024BE7LH", "bob"]\n')

    assert error.key.startswith("approvals.approvers")
    assert "'bob'" in error.reason


def test_malformed_per_tool_approver_id_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, '[approvals.tools.refund]\napprovers = ["bob"]\n')

    assert error.key.startswith("approvals.tools.refund.approvers")
    assert "'bob'" in error.reason


def test_admins_are_users_or_user_groups(tmp_path: Path) -> None:
    path = tmp_path / "admins.toml"
    path.write_text('[admin]\nusers = ["U024BE7LH", "S0ADMINS", "W0ENTERPRISE"]\n')
    assert load_config(path).admin.users == ["U024BE7LH", "S0ADMINS", "W0ENTERPRISE"]
    assert load_config(None).admin.users == []

    error = _error(tmp_path, '[admin]\nusers = ["U024BE7LH", "bob"]\n')
    assert error.key == "admin.users"
    assert "'bob' is not a Slack user id" in error.reason
    assert _error(tmp_path, '[admin]\nuser = ["U024BE7LH"]\n').key == "admin.user"


def test_unknown_require_value_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, '[approvals.tools.refund]\nrequire = "sometimes"\n')

    assert error.key == "approvals.tools.refund.require"


@pytest.mark.parametrize("needed", ["0", "21", '"two"'])
def test_out_of_range_approvals_needed_is_refused(tmp_path: Path, needed: str) -> None:
    error = _error(tmp_path, f"[approvals.tools.refund]\napprovals_needed = {needed}\n")

    assert error.key == "approvals.tools.refund.approvals_needed"


def test_out_of_range_max_turns_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, "[agent]\nmax_turns = 0\n")

    assert error.key == "agent.max_turns"


def test_unknown_builtin_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, '[tools]\nbuiltins = ["shell"]\n')

    assert error.key.startswith("tools.builtins")


def _prompts(*prompts: str, title: str | None = None) -> str:
    text = "[agent]\nsuggested_prompts = [" + ", ".join(prompts) + "]\n"
    return text if title is None else text + f"suggested_prompts_title = {title}\n"


PROMPT = '{ title = "Summarize", message = "Summarize this thread" }'


def test_suggested_prompts_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, _prompts(PROMPT, PROMPT, title='"Try one"'))

    agent = load_config(path).agent

    assert [(p.title, p.message) for p in agent.suggested_prompts] == [
        ("Summarize", "Summarize this thread")
    ] * 2
    assert agent.suggested_prompts_title == "Try one"
    assert Config().agent.suggested_prompts == []


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (_prompts(*[PROMPT] * 5), "agent.suggested_prompts", "at most 4"),
        (_prompts('{ title = "  ", message = "m" }'), "agent.suggested_prompts.0.title", "blank"),
        (_prompts('{ title = "t", message = "" }'), "agent.suggested_prompts.0.message", "blank"),
        (_prompts('{ title = "t" }'), "agent.suggested_prompts.0.message", "required"),
        (_prompts(PROMPT, '{ message = "m" }'), "agent.suggested_prompts.1.title", "required"),
        (
            _prompts(f'{{ title = "{"t" * 76}", message = "m" }}'),
            "agent.suggested_prompts.0.title",
            "at most 75",
        ),
        (
            _prompts(f'{{ title = "t", message = "{"m" * 2001}" }}'),
            "agent.suggested_prompts.0.message",
            "at most 2000",
        ),
        (
            _prompts('{ title = "t", message = "m", emoji = true }'),
            "agent.suggested_prompts.0.emoji",
            "unknown key",
        ),
        (_prompts('"just text"'), "agent.suggested_prompts.0", "valid dictionary"),
        (_prompts(PROMPT, title='""'), "agent.suggested_prompts_title", "blank"),
        (_prompts(PROMPT, title=f'"{"t" * 76}"'), "agent.suggested_prompts_title", "at most 75"),
    ],
)
def test_bad_suggested_prompts_stop_start_up_with_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    error = _error(tmp_path, text)

    assert error.key == key
    assert reason in error.reason


def test_full_example_parses(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL_EXAMPLE))

    assert config.agent.name == "helper"
    assert config.agent.instructions == "Be brief."
    assert config.agent.model == "gpt-4.1"
    assert config.agent.api == "chat_completions"
    assert config.agent.max_turns == 12
    assert config.agent.history_limit == 200
    assert config.tools.modules == ["company.tools", "company.more_tools"]
    assert config.tools.builtins == ["slack_post_message", "slack_lookup_user"]
    assert config.approvals.approvers == ["U024BE7LH", "S0ADMINS", "W0ENTERPRISE"]
    assert config.approvals.allow_self_approval is False
    assert config.approvals.default == "always"
    assert config.approvals.expiry == timedelta(hours=24)
    assert config.approvals.tools["lookup_order"].require == "never"
    assert config.approvals.tools["lookup_order"].approvers is None
    assert config.approvals.tools["refund"].require == "always"
    assert config.approvals.tools["refund"].approvers == ["S0FINANCE"]
    assert config.storage.retain_days == 30
    assert config.storage.purge_history is True


# parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 5 m ", timedelta(minutes=5)),
        ("1s", timedelta(seconds=1)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "24", "h", "1.5h", "1w", "-1h", "24 hours", "0h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|zero"):
        parse_duration(text)


# load_tool_modules / check_policy_tools


@pytest.fixture
def tool_module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway modules; they leave sys.modules afterwards."""
    directory = tmp_path / "admin_tools"
    directory.mkdir()
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for name in set(sys.modules) - before:
        if name.startswith("tg_throwaway_"):
            del sys.modules[name]


def _module(directory: Path, source: str) -> str:
    name = "tg_throwaway_" + uuid.uuid4().hex
    (directory / f"{name}.py").write_text(source, encoding="utf-8")
    return name


GOOD_TOOLS = """\
from agents import function_tool


@function_tool
def shout(text: str) -> str:
    \"\"\"Shout.

    Args:
        text: What to shout.
    \"\"\"
    return text.upper()


TOOLS = [shout]
"""


def test_a_good_tool_module_is_loaded(tool_module_dir: Path) -> None:
    name = _module(tool_module_dir, GOOD_TOOLS)

    tools = load_tool_modules([name], config_path=None)

    assert list(tools) == ["shout"]


def test_a_missing_module_stops_start_up(tmp_path: Path, tool_module_dir: Path) -> None:
    config_path = tmp_path / "threadgate.toml"
    good = _module(tool_module_dir, GOOD_TOOLS)
    name = "tg_throwaway_" + uuid.uuid4().hex

    with pytest.raises(ConfigError) as caught:
        load_tool_modules([good, name], config_path=config_path)

    assert caught.value.path == config_path
    assert caught.value.key == "tools.modules.1"
    assert "cannot import" in caught.value.reason
    assert name in caught.value.reason


def test_a_module_that_fails_on_import_stops_start_up(tool_module_dir: Path) -> None:
    name = _module(tool_module_dir, "raise RuntimeError('broken on purpose')\n")

    with pytest.raises(ConfigError) as caught:
        load_tool_modules([name], config_path=None)

    assert caught.value.key == "tools.modules.0"
    assert "broken on purpose" in caught.value.reason


def test_a_module_without_tools_stops_start_up(tool_module_dir: Path) -> None:
    name = _module(tool_module_dir, "def helper() -> None:\n    pass\n")

    with pytest.raises(ConfigError) as caught:
        load_tool_modules([name], config_path=None)

    assert caught.value.key == "tools.modules.0"
    assert "no TOOLS list" in caught.value.reason


def test_a_non_tool_in_tools_stops_start_up(tool_module_dir: Path) -> None:
    name = _module(
        tool_module_dir,
        "def not_a_tool(text: str) -> str:\n    return text\n\n\nTOOLS = [not_a_tool]\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_tool_modules([name], config_path=None)

    assert caught.value.key == "tools.modules.0"
    assert "not a function tool" in caught.value.reason


def test_the_same_tool_name_twice_stops_start_up(tool_module_dir: Path) -> None:
    first = _module(tool_module_dir, GOOD_TOOLS)
    second = _module(tool_module_dir, GOOD_TOOLS)

    with pytest.raises(ConfigError) as caught:
        load_tool_modules([first, second], config_path=None)

    assert caught.value.key == "tools.modules.1"
    assert "defined twice" in caught.value.reason


def test_policy_for_an_unknown_tool_is_refused(tmp_path: Path, tool_module_dir: Path) -> None:
    config_path = _write(tmp_path, "[approvals.tools.unknown_tool]\nrequire = 'never'\n")
    config = load_config(config_path)
    tools = load_tool_modules([_module(tool_module_dir, GOOD_TOOLS)], config_path=config_path)

    with pytest.raises(ConfigError) as caught:
        check_policy_tools(config, tools, config_path=config_path)

    assert caught.value.path == config_path
    assert caught.value.key == "approvals.tools.unknown_tool"


def test_policy_for_loaded_tools_is_accepted(tmp_path: Path, tool_module_dir: Path) -> None:
    config_path = _write(tmp_path, "[approvals.tools.shout]\nrequire = 'never'\n")
    config = load_config(config_path)
    tools = load_tool_modules([_module(tool_module_dir, GOOD_TOOLS)], config_path=config_path)

    check_policy_tools(config, tools, config_path=config_path)

"""`[[tools.mcp]]`: each kind of server, and every mistake stopping start-up with its key."""

from pathlib import Path

import pytest

from bot.agent.mcp_servers import resolve_servers
from bot.config import ConfigError, load_config

BOTH_KINDS = """\
[[tools.mcp]]
name = "tickets"
command = ["python", "-m", "tickets_server"]
env = { TICKETS_DB = "/srv/tickets.db" }

[[tools.mcp]]
name = "crm"
url = "https://crm.internal/mcp"
headers = { Authorization = "Bearer ${CRM_TOKEN}" }
tools = ["find_customer", "refund"]
timeout = "30s"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "threadgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_example_loads_and_takes_variables_from_the_environment(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, BOTH_KINDS)
    config = load_config(path)
    stdio, http = resolve_servers(
        config.tools.mcp, config_path=path, environ={"CRM_TOKEN": "s3cret"}
    )
    assert stdio.transport == "stdio"
    assert stdio.command == ("python", "-m", "tickets_server")
    assert stdio.env == {"TICKETS_DB": "/srv/tickets.db"}
    assert http.transport == "http"
    assert http.headers == {"Authorization": "Bearer s3cret"}
    assert http.tools == ("find_customer", "refund")
    assert http.timeout == 30.0


def test_a_missing_variable_names_the_file_the_key_and_the_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, BOTH_KINDS)
    with pytest.raises(ConfigError) as caught:
        resolve_servers(load_config(path).tools.mcp, config_path=path, environ={})
    assert caught.value.path == path
    assert caught.value.key == "tools.mcp.1.headers.Authorization"
    assert caught.value.reason == "environment variable CRM_TOKEN is not set"


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        ('name = "x"', "tools.mcp.0", "give either command"),
        ('name = "x"\ncommand = ["a"]\nurl = "http://h/mcp"', "tools.mcp.0", "give either"),
        ('name = "x"\nurl = "http://h/mcp"\nenv = { A = "b" }', "tools.mcp.0", "env is for stdio"),
        ('name = "x"\ncommand = ["a"]\nheaders = { A = "b" }', "tools.mcp.0", "headers are for"),
        ('name = "x"\nurl = "ftp://h"', "tools.mcp.0.url", "is not an http"),
        ('name = "x"\ncommand = []', "tools.mcp.0.command", "at least 1"),
        ('name = "x"\ncommand = ["a"]\ntimeout = "soon"', "tools.mcp.0.timeout", "duration"),
        ('name = "a b"\ncommand = ["a"]', "tools.mcp.0.name", "is not a label"),
        ('name = "x"\ncommand = ["a"]\nport = 1', "tools.mcp.0.port", "unknown key"),
    ],
)
def test_a_wrong_entry_is_refused_with_its_key(
    tmp_path: Path, entry: str, key: str, reason: str
) -> None:
    path = _write(tmp_path, f"[[tools.mcp]]\n{entry}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_two_servers_with_one_name_are_refused(tmp_path: Path) -> None:
    entry = '[[tools.mcp]]\nname = "x"\ncommand = ["a"]\n'
    path = _write(tmp_path, entry + entry)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "tools.mcp"
    assert "two MCP servers are named 'x'" in caught.value.reason

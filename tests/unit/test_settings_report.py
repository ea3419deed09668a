"""`python -m bot` with several bad settings names every one of them before it exits.

An operator who learns of one mistake per restart loses a deploy round per mistake.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHONPATH": str(REPO_ROOT),
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


def test_three_bad_settings_are_reported_together_one_line_each(tmp_path: Path) -> None:
    token = "xoxp-supersecret-user-token-321"

    result = _start(
        tmp_path,
        {
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            "PORT": "70000",
            "DATABASE_URL": "mysql+aiomysql://user@localhost/db",
        },
    )

    assert sorted(result.stderr.splitlines()) == [
        "threadgate: setting DATABASE_URL is invalid: "
        "must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
        "threadgate: setting PORT is invalid: Input should be less than or equal to 65535",
        "threadgate: setting SLACK_BOT_TOKEN is invalid: must be a bot token starting with xoxb-",
    ]
    assert token not in result.stderr


def test_a_missing_setting_and_an_invalid_one_are_both_named(tmp_path: Path) -> None:
    result = _start(
        tmp_path, {"SLACK_SIGNING_SECRET": "test-signing-secret", "THREADGATE_MAX_WORKERS": "0"}
    )

    assert sorted(result.stderr.splitlines()) == [
        "threadgate: set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
        "SLACK_CLIENT_SECRET (many workspaces)",
        "threadgate: setting THREADGATE_MAX_WORKERS is invalid: "
        "Input should be greater than or equal to 1",
    ]

"""Settings from the environment, and `python -m bot` refusing bad ones in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings
from storage.crypto import Cipher

REPO_ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "xoxb-test-token"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "client-secret-value-789"
SIGNING_SECRET = "test-signing-secret"
_OWN_NAMES = ("DATABASE_URL", "PORT", "LOG_LEVEL", "LOG_FORMAT")
_OWN_PREFIXES = ("SLACK_", "OPENAI_", "THREADGATE_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(_OWN_PREFIXES) or name.upper() in _OWN_NAMES:
            monkeypatch.delenv(name)


def _settings() -> Settings:
    return Settings(_env_file=None)


def _http_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)


def _refusal(field: str) -> str:
    with pytest.raises(ValidationError) as caught:
        _settings()
    errors = caught.value.errors()
    assert len(errors) == 1
    assert field in ".".join(str(p) for p in errors[0]["loc"]) or field in errors[0]["msg"]
    return errors[0]["msg"]


# Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)

    settings = _settings()

    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == BOT_TOKEN
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == SIGNING_SECRET
    assert settings.slack_app_token is None
    assert settings.socket_mode is False
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.openai_api_key is None
    assert settings.openai_base_url is None
    assert settings.database_url == "sqlite+aiosqlite:///./threadgate.db"
    assert settings.threadgate_config is None
    assert settings.port == 3000
    assert settings.log_level == "INFO"
    assert settings.migrate_on_start is True
    assert settings.drain_timeout == 30.0


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-key")

    shown = repr(_settings()) + str(_settings())

    assert BOT_TOKEN not in shown
    assert SIGNING_SECRET not in shown
    assert "sk-very-secret-key" not in shown


def test_neither_bot_token_nor_oauth_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)

    message = _refusal("SLACK_BOT_TOKEN")

    assert "SLACK_CLIENT_ID" in message
    assert "not both" not in message


def _oauth_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("THREADGATE_ENCRYPTION_KEY", Cipher.generate_key())


def test_oauth_credentials_choose_many_workspaces(monkeypatch: pytest.MonkeyPatch) -> None:
    _oauth_mode(monkeypatch)

    settings = _settings()

    assert settings.multi_workspace is True
    assert settings.slack_bot_token is None
    assert settings.slack_client_id == CLIENT_ID
    assert CLIENT_SECRET not in repr(settings)


def test_a_bot_token_chooses_one_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)

    assert _settings().multi_workspace is False


def test_a_bot_token_and_oauth_credentials_together_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _oauth_mode(monkeypatch)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)

    assert "not both" in _refusal("SLACK_BOT_TOKEN")


@pytest.mark.parametrize("left_out", ["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"])
def test_oauth_needs_both_id_and_secret(monkeypatch: pytest.MonkeyPatch, left_out: str) -> None:
    _oauth_mode(monkeypatch)
    monkeypatch.delenv(left_out)

    assert f"{left_out} is missing" in _refusal(left_out)


def test_oauth_needs_the_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _oauth_mode(monkeypatch)
    monkeypatch.delenv("THREADGATE_ENCRYPTION_KEY")

    assert "required" in _refusal("THREADGATE_ENCRYPTION_KEY")


def test_a_bot_token_of_the_wrong_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-user-token")

    assert "xoxb-" in _refusal("slack_bot_token")


def test_http_mode_without_signing_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)

    assert "SLACK_SIGNING_SECRET" in _refusal("SLACK_SIGNING_SECRET")


def test_http_mode_with_an_empty_signing_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")

    assert "SLACK_SIGNING_SECRET" in _refusal("SLACK_SIGNING_SECRET")


def test_socket_mode_needs_no_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-test")

    settings = _settings()

    assert settings.socket_mode is True
    assert settings.slack_signing_secret is None


def test_an_app_token_of_the_wrong_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-not-an-app-token")

    assert "xapp-" in _refusal("slack_app_token")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///./threadgate.db",
        "postgresql://user@localhost/db",
        "postgresql+psycopg://user@localhost/db",
        "mysql+aiomysql://user@localhost/db",
    ],
)
def test_a_database_url_without_an_async_driver_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", url)

    assert "aiosqlite" in _refusal("database_url")


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:////var/lib/tg.db", "postgresql+asyncpg://u:p@db:5432/tg"]
)
def test_async_database_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", url)

    assert _settings().database_url == url


def test_slack_api_url_gets_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:8080/api")

    assert _settings().slack_api_url == "http://127.0.0.1:8080/api/"


def test_slack_api_url_with_a_trailing_slash_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:8080/api/")

    assert _settings().slack_api_url == "http://127.0.0.1:8080/api/"


def test_slack_api_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("SLACK_API_URL", "ftp://example.test/api")

    _refusal("slack_api_url")


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("LOG_LEVEL", "debug")

    assert _settings().log_level == "DEBUG"


def test_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("PORT", "70000")

    _refusal("port")


def test_threadgate_settings_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("THREADGATE_CONFIG", str(tmp_path / "tg.toml"))
    monkeypatch.setenv("THREADGATE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("THREADGATE_DRAIN_TIMEOUT", "5")

    settings = _settings()

    assert settings.threadgate_config == tmp_path / "tg.toml"
    assert settings.migrate_on_start is False
    assert settings.drain_timeout == 5.0


# python -m bot


def _run_bot(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    return subprocess.run(  # noqa: S603  (our own interpreter and package)
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_main_without_bot_token_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run_bot(tmp_path, {"SLACK_SIGNING_SECRET": SIGNING_SECRET})

    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in _one_line(result.stderr)
    assert result.stdout == ""


def test_main_with_a_bot_token_and_oauth_credentials_exits_2_with_one_line(
    tmp_path: Path,
) -> None:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "THREADGATE_ENCRYPTION_KEY": Cipher.generate_key(),
    }
    result = _run_bot(tmp_path, env)

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "not both" in line
    assert CLIENT_SECRET not in result.stderr


def test_main_with_neither_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run_bot(tmp_path, {"SLACK_SIGNING_SECRET": SIGNING_SECRET})

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "SLACK_BOT_TOKEN" in line
    assert "SLACK_CLIENT_ID" in line


def test_main_never_prints_secret_values(tmp_path: Path) -> None:
    secret = "supersecret-value-123"
    result = _run_bot(tmp_path, {"SLACK_SIGNING_SECRET": secret, "OPENAI_API_KEY": "sk-" + secret})

    assert result.returncode == 2
    assert secret not in result.stderr
    assert secret not in result.stdout


def test_main_does_not_echo_a_malformed_token(tmp_path: Path) -> None:
    secret = "supersecret-not-a-bot-token-456"
    result = _run_bot(tmp_path, {"SLACK_BOT_TOKEN": secret, "SLACK_SIGNING_SECRET": SIGNING_SECRET})

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "SLACK_BOT_TOKEN" in line
    assert secret not in result.stderr


def test_main_http_mode_without_signing_secret_exits_2(tmp_path: Path) -> None:
    result = _run_bot(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN})

    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in _one_line(result.stderr)


def test_main_with_a_bad_config_file_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "threadgate.toml"
    config.write_text("[agent]\nbogus_key = 1\n", encoding="utf-8")
    secret = "supersecret-signing-789"

    result = _run_bot(
        tmp_path,
        {
            "SLACK_BOT_TOKEN": "xoxb-supersecret-bot-789",
            "SLACK_SIGNING_SECRET": secret,
            "THREADGATE_CONFIG": str(config),
        },
    )

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert str(config) in line
    assert "agent.bogus_key" in line
    assert "unknown key" in line
    assert secret not in result.stderr
    assert "xoxb-supersecret-bot-789" not in result.stderr
    assert not (tmp_path / "threadgate.db").exists()


def test_main_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "absent.toml"

    result = _run_bot(
        tmp_path,
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "THREADGATE_CONFIG": str(config),
        },
    )

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert str(config) in line
    assert "not found" in line


@pytest.mark.parametrize("args", [("bogus",), ("serve", "extra")])
def test_main_with_an_unknown_command_prints_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = _run_bot(
        tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}, *args
    )

    assert result.returncode == 2
    assert _one_line(result.stderr).startswith("usage:")


def test_operations_settings_default_to_text_logs_open_metrics_and_no_traces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _http_mode(monkeypatch)
    settings = _settings()
    assert settings.log_format == "text"
    assert settings.metrics_token is None
    assert settings.otel_exporter_otlp_endpoint is None
    assert settings.trace_content is False


def test_operations_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("THREADGATE_METRICS_TOKEN", "scrape-token")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("THREADGATE_TRACE_CONTENT", "true")
    settings = _settings()
    assert settings.log_format == "json"
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "scrape-token"
    assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"
    assert settings.trace_content is True


def test_an_empty_token_or_endpoint_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """compose passes `${VAR:-}` as an empty value."""
    _http_mode(monkeypatch)
    monkeypatch.setenv("THREADGATE_METRICS_TOKEN", "")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    monkeypatch.setenv("OPENAI_API_KEY", "")
    settings = _settings()
    assert settings.metrics_token is None
    assert settings.otel_exporter_otlp_endpoint is None
    assert settings.openai_api_key is None


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _http_mode(monkeypatch)
    monkeypatch.setenv("LOG_FORMAT", "xml")
    assert "text" in _refusal("log_format")

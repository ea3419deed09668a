"""RedactSecrets: known secret values never reach a formatted log line."""

import io
import logging
import os
from collections.abc import Iterator

import pytest

from bot.log_redaction import REDACTED, RedactSecrets, secret_values
from bot.settings import Settings

SECRET = "xoxb-super-secret-token"
OTHER = "signing-secret-value"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("SLACK_", "OPENAI_", "THREADGATE_")) or name.upper() in (
            "DATABASE_URL",
            "PORT",
            "LOG_LEVEL",
        ):
            monkeypatch.delenv(name)


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("threadgate.test", logging.INFO, __file__, 1, msg, args, None)


def _formatted(record: logging.LogRecord, *secrets: str) -> str:
    assert RedactSecrets(secrets).filter(record) is True
    return logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record)


def test_a_secret_in_a_percent_argument_is_redacted() -> None:
    line = _formatted(_record("calling Slack with %s as %s", SECRET, "bot"), SECRET)

    assert SECRET not in line
    assert f"calling Slack with {REDACTED} as bot" in line


def test_a_secret_in_the_message_itself_is_redacted() -> None:
    line = _formatted(_record(f"token={SECRET}"), SECRET)

    assert SECRET not in line
    assert f"token={REDACTED}" in line


def test_a_secret_inside_a_dict_argument_is_redacted() -> None:
    record = _record("headers: %s", {"Authorization": f"Bearer {SECRET}"})

    line = _formatted(record, SECRET)

    assert SECRET not in line
    assert REDACTED in line


def test_named_percent_arguments_are_redacted() -> None:
    record = _record("%(a)s and %(b)s", {"a": SECRET, "b": OTHER})

    line = _formatted(record, SECRET, OTHER)

    assert line.endswith(f"{REDACTED} and {REDACTED}")


def test_every_secret_and_every_occurrence_is_redacted() -> None:
    line = _formatted(_record("%s %s %s", SECRET, OTHER, SECRET), SECRET, OTHER)

    assert SECRET not in line
    assert OTHER not in line
    assert line.count(REDACTED) == 3


def test_lines_without_secrets_are_untouched() -> None:
    record = _record("posted %d messages to %s", 3, "C123")

    line = _formatted(record, SECRET)

    assert line.endswith("posted 3 messages to C123")
    assert record.args == (3, "C123")


def test_very_short_values_are_not_treated_as_secrets() -> None:
    line = _formatted(_record("status %s", "ok"), "ok", "")

    assert line.endswith("status ok")


@pytest.fixture
def redacting_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactSecrets([SECRET]))
    logger = logging.getLogger("threadgate.test_log_redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_handler_with_the_filter_writes_no_secret(
    redacting_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = redacting_logger

    logger.warning("Slack answered %s for token %s", "invalid_auth", SECRET)

    assert stream.getvalue() == f"Slack answered invalid_auth for token {REDACTED}\n"


def test_secret_values_lists_every_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", OTHER)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-app-level-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-key-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://tg:db-password-value@db:5432/tg")

    values = secret_values(Settings(_env_file=None))

    assert set(values) == {
        SECRET,
        OTHER,
        "xapp-app-level-token",
        "sk-openai-key-value",
        "db-password-value",
    }


def test_secret_values_without_optional_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", OTHER)

    assert secret_values(Settings(_env_file=None)) == [SECRET, OTHER]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tg",
        "postgresql+asyncpg://127.0.0.1:5432/tg",
        "sqlite+aiosqlite:///./threadgate.db",
    ],
)
def test_secret_values_with_a_database_url_without_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", OTHER)
    monkeypatch.setenv("DATABASE_URL", url)

    assert secret_values(Settings(_env_file=None)) == [SECRET, OTHER]


def test_a_secret_inside_a_logged_exception_is_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([SECRET]))
    logger = logging.getLogger("threadgate.test.redaction.exc")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"bad token {SECRET}")
        except RuntimeError:
            logger.exception("failed")
        logger.error("stack", stack_info=True, extra={"token": SECRET})
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert SECRET not in output
    assert "RuntimeError: bad token [redacted]" in output

"""Logging set-up: no conversation content at any level, and known secret values never.

Our own log lines carry ids, counts and Slack error codes, never a message, an argument or an
output. Several libraries log bodies below INFO (slack_sdk and Bolt the Web API and Socket Mode
payloads at DEBUG, openai its request options, aiosqlite every call with its arguments) or SQL
at INFO with result rows at DEBUG (SQLAlchemy, whenever the root logger lets INFO through),
and the MCP client its messages. So each of them has a floor that LOG_LEVEL=DEBUG does not
lower.
"""

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.json_logs import JsonFormatter
from bot.log_context import LogContext
from bot.settings import DatabaseSettings

REDACTED = "[redacted]"
LEVEL_FLOORS = {
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    "threadgate.bolt": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncpg": logging.WARNING,
    "openai": logging.WARNING,
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,  # the MCP client's HTTP: a line per request, with its URL
    "mcp": logging.WARNING,  # MCP messages (tool arguments, results) at DEBUG
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "alembic": logging.WARNING,
}
_FORMATTER = logging.Formatter()


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            # The formatter uses exc_text as it is once set: an exception's text is redacted too.
            record.exc_text = self._redact(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


class ModelErrorsAreWarnings(logging.Filter):
    """The SDK logs every failed model call at ERROR with the error's text, which may quote
    the request. A model that fails is expected in a running agent: the run names it to the
    thread and logs it at WARNING itself, so the SDK's line becomes a WARNING without text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and message.startswith("Error "):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = message.split(":", 1)[0] + " (details withheld)", None
            record.exc_info = record.exc_text = None
        return True


def quiet_model_errors() -> None:
    sdk = logging.getLogger("openai.agents")
    if not any(isinstance(f, ModelErrorsAreWarnings) for f in sdk.filters):
        sdk.addFilter(ModelErrorsAreWarnings())


def secret_values(settings: DatabaseSettings) -> list[str]:
    """Every secret the settings hold, whichever command's settings they are."""
    values = [
        value.get_secret_value()
        for value in vars(settings).values()
        if isinstance(value, SecretStr) and value.get_secret_value()
    ]
    password = make_url(settings.database_url).password
    if password:
        values.append(str(password))
    return values


def configure_logging(settings: DatabaseSettings, stream: TextIO | None = None) -> None:
    """Standard error unless `stream` (the benchmark logs to nowhere, formatted all the same)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactSecrets(secret_values(settings)))
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        handler.addFilter(LogContext())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name, floor in LEVEL_FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, root.level))

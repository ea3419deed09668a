"""Logging set-up with a last line of defence: known secret values never reach a log line."""

import logging
import sys
from collections.abc import Iterable

from bot.settings import Settings

REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


def secret_values(settings: Settings) -> list[str]:
    values = [settings.slack_bot_token.get_secret_value()]
    for optional in (
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.openai_api_key,
    ):
        if optional is not None:
            values.append(optional.get_secret_value())
    if "@" in settings.database_url and ":" in settings.database_url.split("@", 1)[0]:
        credentials = settings.database_url.split("://", 1)[-1].split("@", 1)[0]
        values.append(credentials.split(":", 1)[1])
    return values


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("aiohttp.access", "httpx", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

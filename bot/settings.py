"""Process settings from the environment (or a .env file); secrets stay SecretStr end to end.

`DatabaseSettings` is what a command that only reads the database needs (`audit`);
`CoreSettings` adds what the agent and its tools need; `Settings` adds Slack for the bot, and
`ConsoleSettings` asks for a model instead, so the console runs without a Slack app."""

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.crypto import Cipher

SLACK_API_URL = "https://slack.com/api/"
_NEITHER = (
    "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
    "(many workspaces)"
)
_BOTH = _NEITHER + ", not both"


_FROM_ENVIRONMENT = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=False,
    populate_by_name=True,
)


class ConfigLocation(BaseSettings):
    """Only where the config file is, read as `Settings` reads it: checking a config must not
    need Slack's settings, nor a database."""

    model_config = _FROM_ENVIRONMENT

    threadgate_config: Path | None = None


class DatabaseSettings(BaseSettings):
    """What a command that only reads or writes the database needs (`audit`): no Slack
    secret, so an admin's shell needs none either."""

    model_config = _FROM_ENVIRONMENT

    database_url: str = "sqlite+aiosqlite:///./threadgate.db"
    threadgate_config: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("THREADGATE_ENCRYPTION_KEY")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            Cipher.from_setting(value.get_secret_value())  # its errors never hold the key
        return value

    @property
    def cipher(self) -> Cipher | None:
        key = self.encryption_key
        return Cipher.from_setting(key.get_secret_value()) if key is not None else None


class CoreSettings(DatabaseSettings):
    """What the agent, its tools and the database need, in the bot and in the console."""

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    migrate_on_start: bool = Field(
        default=True, validation_alias=AliasChoices("THREADGATE_MIGRATE_ON_START")
    )
    lease_seconds: float = Field(
        default=30.0, ge=1, validation_alias=AliasChoices("THREADGATE_LEASE_SECONDS")
    )
    # How soon an MCP server that is down is tried again (doubling up to a minute), and how
    # often one that is up is pinged.
    mcp_retry_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias=AliasChoices("THREADGATE_MCP_RETRY_SECONDS")
    )
    mcp_ping_seconds: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("THREADGATE_MCP_PING_SECONDS")
    )

    @field_validator("openai_base_url")
    @classmethod
    def _openai_url_shape(cls, value: str | None) -> str | None:
        return None if value is None else _url_shape(value)


def _url_shape(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class Settings(CoreSettings):
    """One workspace with SLACK_BOT_TOKEN, or many with SLACK_CLIENT_ID + SLACK_CLIENT_SECRET
    (each workspace installs the app through /slack/install); never both, never neither."""

    slack_bot_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    # Comma-separated; unset: the bot scopes of manifest.yml (bot.slack.install.BOT_SCOPES).
    slack_scopes: str | None = None
    slack_redirect_uri: str | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = SLACK_API_URL
    port: int = Field(default=3000, ge=1, le=65535)
    drain_timeout: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("THREADGATE_DRAIN_TIMEOUT")
    )
    max_workers: int = Field(
        default=16, ge=1, le=1000, validation_alias=AliasChoices("THREADGATE_MAX_WORKERS")
    )
    sweep_interval: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("THREADGATE_SWEEP_INTERVAL")
    )
    metrics_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("THREADGATE_METRICS_TOKEN")
    )
    # The OpenTelemetry SDK's own setting: with it unset, no exporter is created.
    otel_exporter_otlp_endpoint: str | None = None
    trace_content: bool = Field(
        default=False, validation_alias=AliasChoices("THREADGATE_TRACE_CONTENT")
    )

    @field_validator(
        "metrics_token", "otel_exporter_otlp_endpoint", "openai_api_key", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`VAR=` (compose's `${VAR:-}`) means unset, not an empty token or URL."""
        return None if value == "" else value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator(
        "slack_api_url", "openai_base_url", "otel_exporter_otlp_endpoint", "slack_redirect_uri"
    )
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        value = _url_shape(value)
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="wrap")
    @classmethod
    def _mode_next_to_field_errors(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self]
    ) -> Self:
        """Name a missing or doubled mode next to the fields' own problems, so a deploy is
        fixed in one round: the check after validation runs only when the fields are valid."""
        try:
            return handler(data)
        except ValidationError as exc:
            given = {k.lower() for k, v in data.items() if v} if isinstance(data, dict) else set()
            token = "slack_bot_token" in given
            oauth = bool(given & {"slack_client_id", "slack_client_secret"})
            if token != oauth or any(not e["loc"] for e in exc.errors()):
                raise
            problem = ValueError(_BOTH if token else _NEITHER)
            details: list[InitErrorDetails] = [
                {"type": "value_error", "loc": (), "input": data, "ctx": {"error": problem}}
            ]
            for error in exc.errors():
                detail: InitErrorDetails = {
                    "type": error["type"],
                    "loc": error["loc"],
                    "input": error["input"],
                }
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            raise ValidationError.from_exception_data(exc.title, details) from None

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        """The mode is a decision, not a guess: a token next to OAuth credentials may be a
        leftover of either, and serving with the wrong one would answer from the wrong app."""
        oauth = self.slack_client_id is not None or self.slack_client_secret is not None
        if self.slack_bot_token is not None and oauth:
            raise ValueError(_BOTH)
        if self.slack_bot_token is None and not oauth:
            raise ValueError(_NEITHER)
        if oauth and (self.slack_client_id is None or self.slack_client_secret is None):
            missing = "SLACK_CLIENT_ID" if self.slack_client_id is None else "SLACK_CLIENT_SECRET"
            raise ValueError(f"{missing} is missing (many workspaces need both)")
        if oauth and self.cipher is None:
            raise ValueError(
                "THREADGATE_ENCRYPTION_KEY is required with SLACK_CLIENT_ID: it seals the "
                "workspaces' tokens in the database"
            )
        return self

    @model_validator(mode="after")
    def _signing_secret_for_http(self) -> Self:
        if self.slack_app_token is None and not self.slack_signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET is required in HTTP mode (set it, or set SLACK_APP_TOKEN "
                "for Socket Mode)"
            )
        return self

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def multi_workspace(self) -> bool:
        return self.slack_client_id is not None


class ConsoleSettings(CoreSettings):
    """`python -m bot console`: a model to talk to, and whose name the console decides in."""

    console_user: str = Field(
        default="console",
        min_length=1,
        max_length=64,
        validation_alias=AliasChoices("THREADGATE_CONSOLE_USER", "USER", "LOGNAME"),
    )

    @model_validator(mode="after")
    def _a_model(self) -> Self:
        if self.openai_api_key is None and self.openai_base_url is None:
            raise ValueError(
                "setting OPENAI_API_KEY is missing (or set OPENAI_BASE_URL to a local model server)"
            )
        return self

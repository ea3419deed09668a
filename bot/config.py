"""The admin's TOML file: what the agent is, which tools it has, and who approves what.

Every table refuses unknown keys, so a typo stops start-up instead of silently changing policy.
"""

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

DEFAULT_INSTRUCTIONS = (
    "You are threadgate, a helpful assistant working inside a Slack thread. Answer concisely. "
    "Some tools need a person's approval before they run; when a call is rejected, explain "
    "what you will do instead."
)


class ConfigError(Exception):
    """A config file that cannot be used, with the file, the key and the reason."""

    def __init__(self, path: Path | None, key: str, reason: str) -> None:
        self.path, self.key, self.reason = path, key, reason
        where = str(path) if path is not None else "<defaults>"
        super().__init__(f"{where}: {key or '(file)'}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration like '90s', '30m', '24h' or '7d'")
    amount = int(match.group(1))
    if amount <= 0:
        raise ValueError("must be longer than zero")
    return timedelta(**{_UNITS[match.group(2)]: amount})


def _check_ids(ids: list[str]) -> list[str]:
    for slack_id in ids:
        if not SLACK_ID.match(slack_id):
            raise ValueError(f"{slack_id!r} is not a Slack user id (U…/W…) or user-group id (S…)")
    return ids


# Slack shows at most four suggested prompts and needs a title and a message for each; it
# documents no lengths, so these keep a title to a button's width and a message to a message.
MAX_SUGGESTED_PROMPTS = 4
PROMPT_TITLE_LIMIT = 75
PROMPT_MESSAGE_LIMIT = 2000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class SuggestedPrompt(_Strict):
    """A prompt offered when someone opens a conversation with the agent."""

    title: str = Field(max_length=PROMPT_TITLE_LIMIT)
    message: str = Field(max_length=PROMPT_MESSAGE_LIMIT)

    _filled = field_validator("title", "message")(_not_blank)


class AgentConfig(_Strict):
    name: str = Field(default="threadgate", min_length=1, max_length=100)
    instructions: str = Field(default=DEFAULT_INSTRUCTIONS, min_length=1)
    model: str = Field(default="gpt-4.1-mini", min_length=1)
    api: Literal["responses", "chat_completions"] = "responses"
    max_turns: int = Field(default=10, ge=1, le=100)
    history_limit: int = Field(default=100, ge=1, le=10_000)
    # Answers stream into the thread as the model writes them; false posts them when done.
    stream: bool = True
    suggested_prompts: list[SuggestedPrompt] = Field(default_factory=list)
    suggested_prompts_title: str | None = Field(default=None, max_length=PROMPT_TITLE_LIMIT)

    @field_validator("suggested_prompts")
    @classmethod
    def _at_most_four(cls, prompts: list[SuggestedPrompt]) -> list[SuggestedPrompt]:
        if len(prompts) > MAX_SUGGESTED_PROMPTS:
            raise ValueError(f"{len(prompts)} prompts: Slack shows at most {MAX_SUGGESTED_PROMPTS}")
        return prompts

    @field_validator("suggested_prompts_title")
    @classmethod
    def _title_filled(cls, title: str | None) -> str | None:
        return None if title is None else _not_blank(title)

    # Files attached in the thread: text up to this size reaches the model, bigger is a note.
    max_file_bytes: int = Field(default=100_000, ge=1, le=10_000_000)
    accepts_images: bool = True  # does the model take image input?
    max_image_bytes: int = Field(default=1_000_000, ge=1, le=20_000_000)


class ToolsConfig(_Strict):
    modules: list[str] = Field(default_factory=list)
    builtins: list[Literal["slack_post_message", "slack_lookup_user"]] = Field(default_factory=list)


class ToolApprovalConfig(_Strict):
    require: Literal["always", "never"] = "always"
    approvers: list[str] | None = None
    # Distinct approvers a call needs before it runs; any one rejection still rejects it.
    approvals_needed: int = Field(default=1, ge=1, le=10)

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _check_ids(ids)


class ApprovalsConfig(_Strict):
    approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False
    expire_after: str = "24h"
    default: Literal["always", "never"] = "always"
    tools: dict[str, ToolApprovalConfig] = Field(default_factory=dict)

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, ids: list[str]) -> list[str]:
        return _check_ids(ids)

    @field_validator("expire_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def expiry(self) -> timedelta:
        return parse_duration(self.expire_after)


class StorageConfig(_Strict):
    retain_days: Annotated[int, Field(ge=1)] | None = None
    purge_history: bool = False


class Config(_Strict):
    agent: AgentConfig = Field(default_factory=AgentConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)


def load_config(path: Path | None) -> Config:
    """Read and validate the file; no file means every default."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        raise ConfigError(path, key, reason) from None

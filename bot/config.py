"""The admin's TOML file: what the agent is, which tools it has, and who approves what.

Every table refuses unknown keys, so a typo stops start-up instead of silently changing policy.
"""

import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


_MCP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpServerConfig(_Strict):
    """`[[tools.mcp]]`: one MCP server, started by the bot (`command`) or reached at `url`."""

    name: str
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    tools: list[str] | None = None
    timeout: str = "30s"

    @field_validator("name")
    @classmethod
    def _label(cls, name: str) -> str:
        if not _MCP_NAME.match(name):
            raise ValueError(f"{name!r} is not a label of letters, digits, '_' or '-'")
        return name

    @field_validator("command")
    @classmethod
    def _program(cls, command: list[str] | None) -> list[str] | None:
        if command is not None and not command[0].strip():
            raise ValueError("the first word must name a program")
        return command

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url!r} is not an http:// or https:// address")
        return url

    _timeout = field_validator("timeout")(_check_duration)

    @model_validator(mode="after")
    def _one_kind(self) -> "McpServerConfig":
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (an HTTP server)")
        if self.env is not None and self.command is None:
            raise ValueError("env is for stdio servers (with command); an HTTP server has headers")
        if self.headers is not None and self.url is None:
            raise ValueError("headers are for HTTP servers (with url); a stdio server has env")
        return self

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()


def expand_env(value: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` from the environment; a missing variable is a KeyError naming it."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise KeyError(name)
        return environ[name]

    return _ENV_REF.sub(lookup, value)


class ToolsConfig(_Strict):
    modules: list[str] = Field(default_factory=list)
    builtins: list[Literal["slack_post_message", "slack_lookup_user"]] = Field(default_factory=list)
    mcp: list[McpServerConfig] = Field(default_factory=list)

    @field_validator("mcp")
    @classmethod
    def _unique_names(cls, servers: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in servers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two MCP servers are named {name!r}")
        return servers


# Thread approvals count one approver; a quorum asks for several, so the two exclude each other.
THREAD_WITH_QUORUM = "allow_for_thread cannot be combined with approvals_needed > 1"


class ToolApprovalConfig(_Strict):
    require: Literal["always", "never"] = "always"
    approvers: list[str] | None = None
    # Distinct approvers a call needs before it runs; any one rejection still rejects it.
    approvals_needed: int = Field(default=1, ge=1, le=20)
    # TOML has booleans: "yes" is a typo, not a yes.
    allow_for_thread: StrictBool = False
    thread_approval_ttl: str = "8h"
    allow_edit: StrictBool = False
    # Reminders and escalation; None: as `[approvals]` says.
    remind_after: str | None = None
    escalate_after: str | None = None
    escalate_to: list[str] | None = None

    @field_validator("approvers", "escalate_to")
    @classmethod
    def _approver_ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _check_ids(ids)

    _ttl = field_validator("thread_approval_ttl")(_check_duration)
    _steps = field_validator("remind_after", "escalate_after")(_check_duration)

    @field_validator("allow_for_thread")
    @classmethod
    def _one_approver(cls, allow: bool, info: ValidationInfo) -> bool:
        if allow and info.data.get("approvals_needed", 1) > 1:
            raise ValueError(THREAD_WITH_QUORUM)
        return allow


OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "matches", "exists")
# An argument value is compared with what the admin wrote; TOML has no null, and a table or
# a date would be compared with JSON that never holds one.
Scalar = bool | int | float | str


class Condition(_Strict):
    """One argument's test in a rule's `when`; every operator given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    eq: Scalar | list[Scalar] | None = None
    ne: Scalar | list[Scalar] | None = None
    gt: int | float | None = None
    gte: int | float | None = None
    lt: int | float | None = None
    lte: int | float | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    matches: str | None = None
    exists: StrictBool | None = None

    @field_validator("gt", "gte", "lt", "lte", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise ValueError("must be a number: only numbers are ordered")
        return value

    @field_validator("matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                reason = f"{value!r} is not a regular expression that compiles: {exc}"
                raise ValueError(reason) from None
        return value

    @model_validator(mode="after")
    def _some_operator(self) -> "Condition":
        if not self.operators():
            raise ValueError("needs an operator: " + ", ".join(OPERATORS))
        return self

    def operators(self) -> dict[str, object]:
        """The operators given, by their config name, in the config's order of operators."""
        given = self.model_dump(by_alias=True, exclude_none=True)
        return {name: given[name] for name in OPERATORS if name in given}


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
# A channel people share: a direct message is nobody's approvals channel.
_MIRROR_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


class RuleConfig(_Strict):
    """`[[approvals.rules]]`: checked in order before the tool's own table; the first that
    matches decides, and what it leaves out comes from the tool's table, then `[approvals]`."""

    tools: list[str] = Field(min_length=1)
    channels: list[str] | None = None
    requesters: list[str] | None = None
    when: dict[str, Condition] = Field(default_factory=dict)
    require: Literal["always", "never"] | None = None
    approvers: list[str] | None = None
    approvals_needed: int | None = Field(default=None, ge=1, le=20)
    allow_for_thread: StrictBool | None = None
    thread_approval_ttl: str | None = None
    allow_edit: StrictBool | None = None
    remind_after: str | None = None
    escalate_after: str | None = None
    escalate_to: list[str] | None = None

    @field_validator("tools")
    @classmethod
    def _star_alone(cls, names: list[str]) -> list[str]:
        if "*" in names and len(names) > 1:
            raise ValueError('"*" means every tool, so it stands alone: tools = ["*"]')
        for name in names:
            _not_blank(name)
        return names

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, ids: list[str] | None) -> list[str] | None:
        for channel in ids or ():
            if not _CHANNEL_ID.match(channel):
                raise ValueError(f"{channel!r} is not a Slack channel id (C…, G… or D…)")
        return ids

    @field_validator("requesters", "approvers", "escalate_to")
    @classmethod
    def _slack_ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _check_ids(ids)

    _steps = field_validator("remind_after", "escalate_after")(_check_duration)

    @field_validator("when")
    @classmethod
    def _conditions(cls, when: dict[str, Condition]) -> dict[str, Condition]:
        for path in when:
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{path!r} is not an argument path like 'amount' or 'a.b'")
        return when

    _ttl = field_validator("thread_approval_ttl")(_check_duration)

    @field_validator("allow_for_thread")
    @classmethod
    def _one_approver(cls, allow: bool | None, info: ValidationInfo) -> bool | None:
        if allow and (info.data.get("approvals_needed") or 1) > 1:
            raise ValueError(THREAD_WITH_QUORUM)
        return allow


class ApprovalsConfig(_Strict):
    approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False
    expire_after: str = "24h"
    default: Literal["always", "never"] = "always"
    # Remind the approvers who have not decided, then add `escalate_to` as approvers; both
    # before `expire_after`. A tool's table or a rule may set its own.
    remind_after: str | None = None
    escalate_after: str | None = None
    escalate_to: list[str] = Field(default_factory=list)
    tools: dict[str, ToolApprovalConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    # The approvals channel: every card is also posted there, and either copy decides.
    mirror_to: str | None = None

    @field_validator("approvers", "escalate_to")
    @classmethod
    def _approver_ids(cls, ids: list[str]) -> list[str]:
        return _check_ids(ids)

    @field_validator("mirror_to")
    @classmethod
    def _mirror_channel(cls, channel: str | None) -> str | None:
        if channel is not None and not _MIRROR_CHANNEL_ID.match(channel):
            raise ValueError(f"{channel!r} is not a Slack channel id (C… or G…)")
        return channel

    @field_validator("expire_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    _steps = field_validator("remind_after", "escalate_after")(_check_duration)

    @model_validator(mode="after")
    def _steps_in_order(self) -> "ApprovalsConfig":
        for key, reason in step_problems(self):
            raise KeyedError(key, reason)
        return self

    @property
    def expiry(self) -> timedelta:
        return parse_duration(self.expire_after)


class KeyedError(ValueError):
    """A problem found across tables, with the key (below the table checking) to blame."""

    def __init__(self, key: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.key = key


@dataclass(frozen=True)
class _Steps:
    """The reminder keys one table sets, as written (None: not set there)."""

    remind_after: str | None
    escalate_after: str | None
    escalate_to: list[str] | None


def _steps_of(table: "ApprovalsConfig | ToolApprovalConfig | RuleConfig") -> _Steps:
    return _Steps(table.remind_after, table.escalate_after, table.escalate_to)


def _over(own: _Steps, parent: _Steps) -> _Steps:
    return _Steps(
        own.remind_after if own.remind_after is not None else parent.remind_after,
        own.escalate_after if own.escalate_after is not None else parent.escalate_after,
        own.escalate_to if own.escalate_to is not None else parent.escalate_to,
    )


def step_problems(config: "ApprovalsConfig") -> list[tuple[tuple[str | int, ...], str]]:
    """Reminders and escalation in force for each table and rule, checked as a call would
    meet them: remind, then escalate (to somebody), then expire. A problem is blamed on a key
    the table sets itself, so an inherited one is named once, where it was written."""
    expire = config.expire_after
    top = _steps_of(config)
    scopes: list[tuple[tuple[str | int, ...], _Steps, _Steps, bool]] = [((), top, top, True)]
    tables = {name: _over(_steps_of(tool), top) for name, tool in config.tools.items()}
    for name, tool in config.tools.items():
        scopes.append((("tools", name), _steps_of(tool), tables[name], False))
    for index, rule in enumerate(config.rules):
        own = _steps_of(rule)
        names = list(config.tools) if rule.tools == ["*"] else rule.tools
        parents = [tables.get(name, top) for name in names] + ([top] if rule.tools == ["*"] else [])
        for parent in parents:
            scopes.append((("rules", index), own, _over(own, parent), False))
    problems = []
    for prefix, own, steps, sets_expiry in scopes:
        problem = _step_problem(own, steps, expire, sets_expiry)
        if problem is not None:
            problems.append(((*prefix, problem[0]), problem[1]))
    return problems


def _step_problem(
    own: _Steps, steps: _Steps, expire: str, sets_expiry: bool
) -> tuple[str, str] | None:
    if steps.escalate_after is not None and not steps.escalate_to:
        key = "escalate_after" if own.escalate_after is not None else "escalate_to"
        if own.escalate_after is not None or own.escalate_to is not None:
            return key, "escalate_after needs escalate_to: the approvers to add to the call"
    order = [
        ("remind_after", steps.remind_after, own.remind_after is not None),
        ("escalate_after", steps.escalate_after, own.escalate_after is not None),
        ("expire_after", expire, sets_expiry),
    ]
    given = [(key, parse_duration(value), value, mine) for key, value, mine in order if value]
    for first, then in itertools.pairwise(given):
        (early, early_at, early_text, early_mine), (late, late_at, late_text, late_mine) = (
            first,
            then,
        )
        if early_at < late_at or not (early_mine or late_mine):
            continue
        blamed = early if early_mine else late
        return blamed, (
            f"{early} ({early_text}) must be shorter than {late} ({late_text}): "
            "a call is reminded, then escalated, then expires"
        )
    return None


class StorageConfig(_Strict):
    retain_days: Annotated[int, Field(ge=1)] | None = None
    purge_history: bool = False
    # The audit log's own retention, apart from `retain_days`: by default it is kept.
    audit_retain_days: Annotated[int, Field(ge=1)] | None = None


class AdminConfig(_Strict):
    """`[admin]`: who may read the audit log in Slack (`/threadgate audit`)."""

    users: list[str] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _admin_ids(cls, ids: list[str]) -> list[str]:
        return _check_ids(ids)


_TEAM_ID = re.compile(r"^T[A-Z0-9]{2,31}$")


class WorkspaceConfig(_Strict):
    """`[workspaces.T…]`: the tables that differ in one workspace, each replacing the
    top-level table of its name whole; a table left out is the top level's."""

    agent: AgentConfig | None = None
    approvals: ApprovalsConfig | None = None
    admin: AdminConfig | None = None


class Config(_Strict):
    agent: AgentConfig = Field(default_factory=AgentConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    workspaces: dict[str, WorkspaceConfig] = Field(default_factory=dict)

    @field_validator("workspaces")
    @classmethod
    def _team_ids(cls, tables: dict[str, WorkspaceConfig]) -> dict[str, WorkspaceConfig]:
        for team_id in tables:
            if not _TEAM_ID.match(team_id):
                raise KeyedError((team_id,), f"{team_id!r} is not a Slack team id (T…)")
        return tables

    def for_team(self, team_id: str | None) -> "Config":
        """The effective config of one workspace: its own tables over the top-level ones."""
        own = self.workspaces.get(team_id or "")
        if own is None:
            return self
        return self.model_copy(
            update={
                "agent": own.agent or self.agent,
                "approvals": own.approvals or self.approvals,
                "admin": own.admin or self.admin,
            }
        )


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
        loc = list(first["loc"])
        keyed = (first.get("ctx") or {}).get("error")
        if isinstance(keyed, KeyedError):
            loc.extend(keyed.key)
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        at = 2 if loc[:1] == ["workspaces"] else 0  # workspaces.T….approvals.rules…
        rule = loc[at + 2] if len(loc) > at + 2 else None
        if loc[at : at + 2] == ["approvals", "rules"] and isinstance(rule, int):
            number = rule + 1
            loc[at + 2] = number
            when = len(loc) == at + 6 and loc[at + 3] == "when"
            if first["type"] == "extra_forbidden" and when:
                reason = f"unknown operator (use {', '.join(OPERATORS)})"
            reason = f"rule {number}: {reason}"
        key = ".".join(str(part) for part in loc)
        raise ConfigError(path, key, reason) from None


def rule_key(index: int, *parts: str) -> str:
    """The key of rule `index` (0-based) as errors name it: rules are numbered from 1."""
    return ".".join(["approvals", "rules", str(index + 1), *parts])

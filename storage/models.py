"""Tables threadgate owns, and the persisted statuses that drive its state machines.

The SDK's conversation tables (`agent_sessions`, `agent_messages`) are not declared here: the
SDK owns their shape. The migrations create them and never drop them.
"""

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import QueryableAttribute, defer
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storage.crypto import seal, unseal


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_ref() -> str:
    """A short id that a person can quote from Slack and an operator can grep for in the log."""
    return "E" + secrets.token_hex(4).upper()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases: SQLite drops the zone, PostgreSQL keeps it."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SealedText(TypeDecorator[str]):
    """Text that holds what people wrote: sealed on the way in when the engine has a cipher.

    The cipher rides on the engine's dialect (set by storage.database.Database), so every
    query, ORM or Core, seals and unseals the same way without a repository remembering to.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return seal(getattr(dialect, CIPHER_ATTRIBUTE, None), value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return unseal(getattr(dialect, CIPHER_ATTRIBUTE, None), value)


CIPHER_ATTRIBUTE = "threadgate_cipher"


def _requesters_column() -> Column[list[str]]:
    # The server default only serves rows written before the column existed (migration 0004).
    return Column(JSON, nullable=False, server_default=text("'[]'"))


class JobKind(StrEnum):
    MESSAGE = "message"
    RESUME = "resume"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # A message that arrived while its thread waited for approval: folded into the resume.
    DEFERRED = "deferred"


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    RESUMING = "resuming"
    COMPLETED = "completed"
    FAILED = "failed"
    # Its process stopped mid-run; a person may retry it, which marks it RETRIED.
    INTERRUPTED = "interrupted"
    RETRIED = "retried"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class DecisionKind(StrEnum):
    """What a person (or the expiry sweep) did to an approval. An `edit` is someone changing
    the call's arguments (its approval, if it counts, is an `approve` of its own)."""

    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"
    # Approved this call and, with it, later calls the same rule governs in the same thread.
    THREAD_APPROVAL = "thread_approval"
    # A call that ran without a card under a thread approval; its user is who gave that.
    AUTO_APPROVAL = "auto_approval"
    # A thread approval ended by a person before its time.
    REVOKE = "revoke"
    EDIT = "edit"


class SlackEvent(SQLModel, table=True):
    """One row per Events API delivery we accepted: Slack retries reuse the event_id."""

    __tablename__ = "slack_events"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)


class Thread(SQLModel, table=True):
    """A Slack thread the bot takes part in; its lease serialises work across processes."""

    __tablename__ = "threads"
    __table_args__ = (Index("ix_threads_team", "team_id"),)

    key: str = Field(primary_key=True, max_length=200)
    team_id: str = Field(max_length=32)
    # The Enterprise Grid org of the workspace; None outside one.
    enterprise_id: str | None = Field(default=None, max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Job(SQLModel, table=True):
    """A unit of thread work: a message to answer or a run to resume, done in id order."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
        Index("ix_jobs_thread_status_id", "thread_key", "status", "id"),
        Index("ix_jobs_run_status", "run_id", "status"),
        Index("ix_jobs_status_finished", "status", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    thread_key: str = Field(max_length=200, foreign_key="threads.key")
    kind: JobKind = Field(sa_type=String(16))
    status: JobStatus = Field(default=JobStatus.QUEUED, sa_type=String(16))
    dedupe_key: str = Field(max_length=250)
    user_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    text: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    # Whether the message's event carried files; None when not known (rows from before, the
    # console). A thread's first message without files needs no read of the thread.
    has_files: bool | None = Field(default=None, sa_type=Boolean)
    run_id: str | None = Field(default=None, max_length=40)
    owner: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Run(SQLModel, table=True):
    """One agent run in a thread; while it waits for approval it holds the serialized RunState."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_status", "thread_key", "status"),
        Index("ix_runs_status_updated", "status", "updated_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    thread_key: str = Field(max_length=200, foreign_key="threads.key")
    status: RunStatus = Field(default=RunStatus.RUNNING, sa_type=String(16))
    requested_by: str = Field(max_length=32)  # who started it; also first of `requesters`
    # Everyone whose words reached the run, in order: the starter, then the authors of the
    # messages a resume carried in. Each of them asked for every call the run makes.
    requesters: list[str] = Field(default_factory=list, sa_column=_requesters_column())
    # Bumped at every pause so approvals of an older pause can never resume a newer one.
    generation: int = Field(default=0)
    state: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    sdk_version: str | None = Field(default=None, max_length=32)
    state_schema_version: str | None = Field(default=None, max_length=16)
    error_ref: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)


# For a read of a run that never touches its paused state (the largest column, sealed when
# encryption is on): left unread, and an attempt to read it raises instead of a lazy load.
STATE_UNREAD = defer(cast("QueryableAttribute[Any]", Run.state), raiseload=True)


class Approval(SQLModel, table=True):
    """One pending tool call of a paused run; its id is the only thing a button carries."""

    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_run_generation", "run_id", "generation"),
        Index("ix_approvals_status_expires", "status", "expires_at"),
        Index("ix_approvals_status_decided", "status", "decided_at"),
        Index("ix_approvals_team_status", "team_id", "status"),
        Index("ix_approvals_status_remind", "status", "remind_at"),
        Index("ix_approvals_status_escalate", "status", "escalate_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    run_id: str = Field(max_length=40, foreign_key="runs.id")
    generation: int
    team_id: str = Field(max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)  # its thread's
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    call_id: str = Field(max_length=200)
    tool_name: str = Field(max_length=200)
    arguments: str = Field(sa_column=Column(SealedText, nullable=False))
    requested_by: str = Field(max_length=32)
    requesters: list[str] = Field(default_factory=list, sa_column=_requesters_column())
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Distinct approvers the call needs, fixed when it paused; the server default serves the
    # rows written before quorums existed (migration 0007).
    approvals_needed: int = Field(
        default=1, sa_column=Column(Integer, nullable=False, server_default=text("1"))
    )
    # The rule that decided this call needs approval, and who it named (`approvers`): its
    # number in `[[approvals.rules]]`, None when the tool's table or `[approvals]` decided.
    rule_index: int | None = None
    rule_label: str | None = Field(default=None, sa_type=Text)
    # Whether the deciding policy offered "Approve for this thread", and for how long such an
    # approval would last: the card is drawn from the row, long after the config was read.
    # NULL on rows stored before thread approvals existed (migration 0009): not offered.
    allow_for_thread: bool | None = None
    thread_approval_ttl_seconds: int | None = None
    # Set on the row of a call that ran without a card under this thread approval: the row
    # is what the execution ledger claims, and its "card" is the auto-approved post.
    thread_approval_id: str | None = Field(default=None, max_length=40)
    # Whether the policy that decided the call offered "Edit…", so a card drawn later from the
    # row offers it too; None for rows written before edits existed (migration 0010): no.
    allow_edit: bool | None = Field(default=None, sa_type=Boolean)
    # The arguments an approver put in place of the model's (a JSON object); the tool runs
    # with these when set. `arguments` keeps what the model asked for, for the record.
    edited_arguments: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    # The approvals channel (`[approvals] mirror_to` when the call paused) and the card's copy
    # there once posted: either copy decides. None without one (migration 0013).
    mirror_channel_id: str | None = Field(default=None, max_length=32)
    mirror_ts: str | None = Field(default=None, max_length=32)
    status: ApprovalStatus = Field(default=ApprovalStatus.PENDING, sa_type=String(16))
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    # Set when the approved call starts: a call that started is never started again.
    executed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Reminders and escalation, fixed when the call paused: when each step is due (None: the
    # policy has none) and when it was taken, once, by whichever process swept first.
    # `escalate_to` become approvers of the call once `escalated_at` is set, not before.
    remind_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalate_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalate_to: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApprovalDecision(SQLModel, table=True):
    """One vote or decision on an approval, written in the transaction it records and never
    changed after: who, when, what, and (sealed, as it is conversation content) why.

    A person's approval counts once: the partial unique index admits one `approve` row per
    person and approval, and the vote is inserted against it (ON CONFLICT DO NOTHING), so the
    database, not a read before the insert, decides whether a click is a new vote. `user_id`
    is NULL where nobody decided: an expiry.
    """

    __tablename__ = "approval_decisions"
    __table_args__ = (
        Index("ix_approval_decisions_approval", "approval_id", "id"),
        Index("ix_approval_decisions_user", "team_id", "user_id", "id"),
        Index(
            "uq_approval_decisions_vote",
            "approval_id",
            "user_id",
            unique=True,
            sqlite_where=text("kind = 'approve'"),
            postgresql_where=text("kind = 'approve'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(max_length=40, foreign_key="approvals.id")
    run_id: str = Field(max_length=40)
    team_id: str = Field(max_length=32)
    user_id: str | None = Field(default=None, max_length=32)
    kind: DecisionKind = Field(sa_type=String(16))
    reason: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ThreadApproval(SQLModel, table=True):
    """ "Approve for this thread": later calls of `tool_name` in this thread that the same rule
    governs (`rule_index`, None for the tool's table) run without a card until `expires_at`,
    unless someone revokes it first. Revoking is a compare-and-set on `revoked_at IS NULL`.

    `approval_id` is the call whose card gave it (no foreign key: retention removes that
    approval on its own schedule); `approvers` are those of the rule as stored with that call.
    """

    __tablename__ = "thread_approvals"
    __table_args__ = (
        Index("ix_thread_approvals_thread_tool", "team_id", "channel_id", "thread_ts", "tool_name"),
        Index("ix_thread_approvals_expires", "expires_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    approval_id: str = Field(max_length=40)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    tool_name: str = Field(max_length=200)
    rule_index: int | None = None
    approved_by: str = Field(max_length=32)
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    requesters: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=32)


class OutboxKind(StrEnum):
    POST = "post"  # a new message in the thread: payload holds its text and blocks
    UPDATE = "update"  # a new version of a message the bot posted: payload holds its ts too
    CARD = "card"  # an approval's card as the approval stands when delivered
    # The card's copy in the approvals channel, as the approval stands when delivered.
    MIRROR = "mirror"
    INTERRUPTED = "interrupted"  # the note of a run whose process stopped half-way
    # A reminder or an escalation of a waiting call, to one approver: a DM to a person, a
    # mention in the thread for a user group. Payload: {"to": id, "step": "remind"|"escalate"}.
    REMINDER = "reminder"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # Slack refused it for good (or it kept failing): logged, not retried


class OutboxMessage(SQLModel, table=True):
    """A message the bot owes a thread, committed with the state change that owes it.

    Whoever committed it delivers it right after; if that process dies first, the sweep takes
    it once the claim (`next_attempt_at`) has passed. A post carries its id in the message's
    metadata, so a retried delivery finds an earlier post instead of posting twice.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_thread_status_id", "thread_key", "status", "id"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    thread_key: str = Field(max_length=200)
    kind: OutboxKind = Field(sa_type=String(16))
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=String(16))
    approval_id: str | None = Field(default=None, max_length=40)
    payload: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    claimed_by: str | None = Field(default=None, max_length=100)
    attempts: int = Field(default=1)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    message_ts: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEvent(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EDITED = "edited"
    # The ledger let the approved call start; `executed` follows when it returned.
    STARTED = "started"
    EXECUTED = "executed"
    AUTO_APPROVED = "auto_approved"
    THREAD_APPROVAL_GRANTED = "thread_approval_granted"
    THREAD_APPROVAL_REVOKED = "thread_approval_revoked"
    REMINDED = "reminded"
    ESCALATED = "escalated"


class AuditEntry(SQLModel, table=True):
    """One thing that happened to an approval, appended in the transaction of the change it
    records and never changed after.

    It outlives the approval (no foreign key; its own retention, `[storage]
    audit_retain_days`) and holds no conversation content: the call's arguments and output are
    there as SHA-256 digests, people as Slack ids, and nothing is sealed, so an export reads
    without the encryption key.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_approval", "approval_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    event: AuditEvent = Field(sa_type=String(32))
    approval_id: str = Field(max_length=40)
    run_id: str = Field(max_length=40)
    tool: str = Field(max_length=200)
    # Who acted: a Slack user id, or "threadgate" when nobody did (an expiry, a reminder).
    user_id: str = Field(max_length=32)
    team_id: str = Field(max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    # The rule that governs the call, as its label or "rule N"; None for the tool's own table.
    rule: str | None = Field(default=None, max_length=200)
    arguments_sha256: str = Field(max_length=64)
    output_sha256: str | None = Field(default=None, max_length=64)
    # Ids and counts that complete the entry ("2 of 2 approvals", who was reminded), never text
    # a person or the model wrote.
    detail: str | None = Field(default=None, max_length=500)


class FeedbackValue(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class Feedback(SQLModel, table=True):
    """One person's opinion of one answer: a second click replaces the first.

    It holds ids and a word, no conversation content, so nothing of it is sealed. `run_id` is
    not a foreign key: an opinion is its own record, kept (and purged) by when it was given,
    and it never holds a finished run back from retention.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("run_id", "user_id", name="uq_feedback_run_user"),
        Index("ix_feedback_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=40)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    user_id: str = Field(max_length=32)
    value: FeedbackValue = Field(sa_type=String(16))
    # When the opinion on record was given: a changed mind moves it.
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HomeView(SQLModel, table=True):
    """Someone who opened the App Home, and when their Home view was last published: a
    decision refreshes the Home views of the call's approvers found here, and nobody else's.
    Holds ids and a time only."""

    __tablename__ = "home_views"

    team_id: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(primary_key=True, max_length=32)
    published_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SlackInstallation(SQLModel, table=True):
    """The app installed in one workspace, or in a whole Enterprise Grid org
    (`is_enterprise_install`): the tokens that speak for it, sealed, and who installed it.

    One row per workspace or org (`key`); installing again replaces it. Tokens are sealed like
    conversation content (multi-workspace mode requires the encryption key): a database dump
    must not hand out a bot token.
    """

    __tablename__ = "slack_installations"
    __table_args__ = (
        UniqueConstraint("key", name="uq_slack_installations_key"),
        Index("ix_slack_installations_team", "team_id"),
        Index("ix_slack_installations_enterprise", "enterprise_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # "T:<team id>" for a workspace, "E:<enterprise id>" for an org-wide install.
    key: str = Field(max_length=40)
    app_id: str | None = Field(default=None, max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)
    enterprise_name: str | None = Field(default=None, max_length=200)
    enterprise_url: str | None = Field(default=None, max_length=500)
    team_id: str | None = Field(default=None, max_length=32)
    team_name: str | None = Field(default=None, max_length=200)
    is_enterprise_install: bool = Field(default=False, sa_type=Boolean)
    token_type: str | None = Field(default=None, max_length=16)
    bot_token: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    bot_id: str | None = Field(default=None, max_length=32)
    bot_user_id: str | None = Field(default=None, max_length=32)
    bot_scopes: str = Field(default="", sa_type=Text)
    bot_refresh_token: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    bot_token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The installer, and their token when the app asks for user scopes (threadgate does not).
    user_id: str = Field(max_length=32)
    user_token: str | None = Field(default=None, sa_column=Column(SealedText, nullable=True))
    user_scopes: str = Field(default="", sa_type=Text)
    user_refresh_token: str | None = Field(
        default=None, sa_column=Column(SealedText, nullable=True)
    )
    user_token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    installed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OAuthState(SQLModel, table=True):
    """An install in progress: the `state` that /slack/install handed the browser, stored as
    its SHA-256 digest so a database read cannot complete someone else's install. Deleted by
    the one redirect that uses it, whichever process that reaches."""

    __tablename__ = "oauth_states"
    __table_args__ = (Index("ix_oauth_states_expires", "expires_at"),)

    digest: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime)

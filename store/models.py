"""The store's tables.

Timestamps are timezone-aware UTC, kept as fixed-width ISO-8601 text so that they sort and
compare as text and SQL can bucket them. JSON payloads are kept as canonical JSON text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 3
"""Bumped whenever a table changes; a store with a newer version is refused, never guessed at.

2 added the conversation table; 3 added `chain_head` (each run's head, kept with every append)
and the triggers that refuse the edits no code path makes. Each version is an Alembic revision in
`store/migrations`; an older store is brought up to date by `longrun init --upgrade` only."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime stored as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` text."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> str | None:
        if value is None:
            return None
        return iso(value)

    def process_result_value(self, value: str | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value)


def iso(value: datetime) -> str:
    """The store's text form of a timestamp (naive datetimes are refused: they are bugs)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


_clock: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """The store's clock: the wall clock, unless a writer that replays history has set one."""
    return _clock() if _clock is not None else datetime.now(UTC)


@contextmanager
def clock_set_to(clock: Callable[[], datetime]) -> Iterator[None]:
    """Stamps everything the store writes inside the block with `clock()`: seeds replay a story."""
    global _clock
    saved, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = saved


def _ts(nullable: bool = False) -> Field:  # type: ignore[valid-type]
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class RunState(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    awaiting_approval = "awaiting_approval"
    """Waiting for a person: a risky call, a question, a budget raise, a breaker reset or sign-off."""
    tripped = "tripped"
    """A circuit breaker is open."""
    done = "done"
    failed = "failed"
    archived = "archived"


class SessionState(StrEnum):
    starting = "starting"
    running = "running"
    wrapping_up = "wrapping_up"
    """Told to finish its work and write its handoff before the deadline."""
    ended = "ended"
    timed_out = "timed_out"
    """Killed at its deadline."""
    crashed = "crashed"
    """Its process died, or its heartbeat went stale, without it recording an end."""
    killed = "killed"
    """Ended by a person (stop) or by the supervisor's shutdown."""


FINAL_SESSION_STATES = frozenset(
    {SessionState.ended, SessionState.timed_out, SessionState.crashed, SessionState.killed}
)


class ApprovalState(StrEnum):
    pending = "pending"
    approved = "approved"
    denied = "denied"
    answered = "answered"
    expired = "expired"


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str


class Run(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    goal: str
    spec_json: str
    spec_path: str | None = None
    workspace: str
    branch: str
    state: str = Field(default=RunState.draft)
    state_reason: str | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    head_checkpoint_id: int | None = None
    parent_run_id: str | None = None
    due_at: datetime | None = _ts(nullable=True)
    """Set when the schedule says a session should start; cleared when one starts."""
    next_session_at: datetime | None = _ts(nullable=True)
    next_reason: str | None = None
    """When the next session is planned and why (schedule, cooldown, usage-limit reset, window)."""
    hold_until: datetime | None = _ts(nullable=True)
    """No session starts before this (a usage limit's reset time)."""
    window_ends_at: datetime | None = _ts(nullable=True)
    """The end of the cron window the run is in; no session's deadline runs past it."""
    spent_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


class RunSession(SQLModel, table=True):
    """One time-boxed attempt at a run (named so as not to clash with a database session)."""

    __tablename__ = "session"
    __table_args__ = (UniqueConstraint("run_id", "n"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    n: int
    state: str = Field(default=SessionState.starting)
    pid: int | None = None
    created_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True)
    deadline_at: datetime = _ts()
    wrap_up_at: datetime = _ts()
    heartbeat_at: datetime | None = _ts(nullable=True)
    ended_at: datetime | None = _ts(nullable=True)
    end_reason: str | None = None
    from_checkpoint_id: int | None = None
    stop_requested: bool = False
    """Wrap up at the next step and end (a pause, or the supervisor shutting down)."""
    kill_requested: bool = False
    """End now: the supervisor kills the process group at its next reconcile."""
    settled_at: datetime | None = _ts(nullable=True)
    """When the supervisor finished with the ended session (judged it, planned the next)."""
    spent_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


class Event(SQLModel, table=True):
    """One row of the append-only log; `hash` chains it to the run's previous event."""

    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index("ix_event_run_kind_ts", "run_id", "kind", "ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    seq: int
    session_id: int | None = None
    ts: datetime = _ts()
    kind: str
    data: str
    prev_hash: str
    hash: str


class ChainHead(SQLModel, table=True):
    """A run's chain head: how many events its log holds and the hash of the last, written in the
    same transaction as every append, so a log that lost its tail no longer matches its head."""

    __tablename__ = "chain_head"

    run_id: str = Field(primary_key=True)
    events: int
    hash: str
    exact_from: int = 1
    """The first seq written by schema 3: from there on, a row's time is its event's time exactly
    (an older longrun stamped them a moment apart)."""


class Checkpoint(SQLModel, table=True):
    """A point the run can resume from: references and deltas, never a copy of the history."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    session_id: int | None = None
    parent_id: int | None = None
    seq: int
    commit: str
    reason: str
    handoff_json: str | None = None
    features_json: str = "{}"
    commits_json: str = "[]"
    """The workspace commits made since the parent checkpoint (sha, subject), newest first, capped."""
    spent_usd: float = 0.0
    tokens: int = 0
    created_at: datetime = _ts()


class Verdict(SQLModel, table=True):
    __table_args__ = (
        Index("ix_verdict_run_feature", "run_id", "feature_id", "checkpoint_id", "id"),
        Index("ix_verdict_checkpoint", "checkpoint_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    checkpoint_id: int = Field(foreign_key="checkpoint.id")
    feature_id: str
    judge: str
    status: str
    evidence_json: str = "{}"
    created_at: datetime = _ts()


class Approval(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    session_id: int | None = None
    kind: str
    state: str = Field(default=ApprovalState.pending)
    request_json: str = "{}"
    token_hash: str | None = None
    requested_at: datetime = _ts()
    expires_at: datetime | None = _ts(nullable=True)
    decided_by: str | None = None
    decided_at: datetime | None = _ts(nullable=True)
    comment: str | None = None


class Conversation(SQLModel, table=True):
    """A worker's conversation as it stood at a checkpoint: the messages to go on from, exactly.

    Kept when a session pauses for a person (the waiting tool calls are in its last message)."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    session_id: int | None = None
    checkpoint_id: int = Field(foreign_key="checkpoint.id")
    reason: str
    messages_json: str
    created_at: datetime = _ts()
    resumed_by: int | None = None
    """The session that went on from it, once one has."""


class SpendDay(SQLModel, table=True):
    """A run's spend in one UTC day, kept in the same transaction as the model-call events."""

    __tablename__ = "spend_day"

    run_id: str = Field(foreign_key="run.id", primary_key=True)
    day: str = Field(primary_key=True)
    spent_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


class Breaker(SQLModel, table=True):
    """One circuit breaker of a run: closed, open (tripped) or half-open (one trial session)."""

    run_id: str = Field(foreign_key="run.id", primary_key=True)
    name: str = Field(primary_key=True)
    state: str = "closed"
    tripped_at: datetime | None = _ts(nullable=True)
    reason: str | None = None


class Lease(SQLModel, table=True):
    """The supervisor lease: one row per store, taken by compare-and-set."""

    name: str = Field(primary_key=True)
    holder: str
    heartbeat_at: datetime = _ts()
    expires_at: datetime = _ts()

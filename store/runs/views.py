"""The read models handed out of the store: frozen dataclasses, never live table rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from longrun.store.models import (
    FINAL_SESSION_STATES,
    Checkpoint,
    Run,
    RunSession,
    iso,
)
from longrun.store.runs.requests import ApprovalRequest, read_request

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


@dataclass(frozen=True)
class Usage:
    """Tokens of one model call (or a sum of them) and what they cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TOKEN_KINDS} | {"tokens": self.tokens, "usd": self.usd}

    def tokens_json(self) -> dict[str, int]:
        """The token counts alone (the spend is shown beside them, as `spent_usd`)."""
        return {k: getattr(self, k) for k in TOKEN_KINDS} | {"tokens": self.tokens}


def _usage_of(row: Run | RunSession) -> Usage:
    return Usage(
        row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_read_tokens, row.spent_usd
    )


@dataclass(frozen=True)
class RunView:
    id: str
    name: str
    goal: str
    state: str
    state_reason: str | None
    workspace: str
    branch: str
    spec: dict[str, Any]
    spec_path: str | None
    created_at: datetime
    updated_at: datetime
    head_checkpoint_id: int | None
    parent_run_id: str | None
    usage: Usage
    due_at: datetime | None = None
    next_session_at: datetime | None = None
    next_reason: str | None = None
    hold_until: datetime | None = None
    window_ends_at: datetime | None = None

    @property
    def spent_usd(self) -> float:
        return self.usage.usd

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "goal": self.goal,
            "state": self.state,
            "state_reason": self.state_reason,
            "workspace": self.workspace,
            "branch": self.branch,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "head_checkpoint_id": self.head_checkpoint_id,
            "parent_run_id": self.parent_run_id,
            "spent_usd": round(self.usage.usd, 6),
            "tokens": self.usage.tokens_json(),
            "next_session_at": iso(self.next_session_at) if self.next_session_at else None,
            "next_reason": self.next_reason,
        }


@dataclass(frozen=True)
class SessionView:
    id: int
    run_id: str
    n: int
    state: str
    pid: int | None
    created_at: datetime
    started_at: datetime | None
    deadline_at: datetime
    wrap_up_at: datetime
    heartbeat_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    from_checkpoint_id: int | None
    stop_requested: bool
    usage: Usage
    kill_requested: bool = False
    settled_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_SESSION_STATES

    def to_json(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return iso(v) if v else None

        return {
            "id": self.id,
            "n": self.n,
            "state": self.state,
            "pid": self.pid,
            "started_at": t(self.started_at),
            "ended_at": t(self.ended_at),
            "deadline_at": iso(self.deadline_at),
            "end_reason": self.end_reason,
            "from_checkpoint_id": self.from_checkpoint_id,
            "spent_usd": round(self.usage.usd, 6),
            "tokens": self.usage.tokens_json(),
        }


@dataclass(frozen=True)
class CheckpointView:
    id: int
    run_id: str
    session_id: int | None
    parent_id: int | None
    seq: int
    commit: str
    reason: str
    handoff: dict[str, Any] | None
    features: dict[str, str]
    commits: list[dict[str, str]]
    spent_usd: float
    tokens: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "parent_id": self.parent_id,
            "seq": self.seq,
            "commit": self.commit,
            "reason": self.reason,
            "handoff": self.handoff,
            "features": self.features,
            "spent_usd": round(self.spent_usd, 6),
            "tokens": self.tokens,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class VerdictView:
    feature_id: str
    checkpoint_id: int
    judge: str
    status: str
    evidence: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "feature_id": self.feature_id,
            "checkpoint_id": self.checkpoint_id,
            "judge": self.judge,
            "status": self.status,
            "evidence": self.evidence,
            "created_at": iso(self.created_at) if self.created_at else None,
        }


def _run_view(row: Run) -> RunView:
    return RunView(
        id=row.id,
        name=row.name,
        goal=row.goal,
        state=row.state,
        state_reason=row.state_reason,
        workspace=row.workspace,
        branch=row.branch,
        spec=json.loads(row.spec_json),
        spec_path=row.spec_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
        head_checkpoint_id=row.head_checkpoint_id,
        parent_run_id=row.parent_run_id,
        usage=_usage_of(row),
        due_at=row.due_at,
        next_session_at=row.next_session_at,
        next_reason=row.next_reason,
        hold_until=row.hold_until,
        window_ends_at=row.window_ends_at,
    )


def _session_view(row: RunSession) -> SessionView:
    assert row.id is not None
    return SessionView(
        id=row.id,
        run_id=row.run_id,
        n=row.n,
        state=row.state,
        pid=row.pid,
        created_at=row.created_at,
        started_at=row.started_at,
        deadline_at=row.deadline_at,
        wrap_up_at=row.wrap_up_at,
        heartbeat_at=row.heartbeat_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        from_checkpoint_id=row.from_checkpoint_id,
        stop_requested=row.stop_requested,
        usage=_usage_of(row),
        kill_requested=row.kill_requested,
        settled_at=row.settled_at,
    )


def _checkpoint_view(row: Checkpoint) -> CheckpointView:
    assert row.id is not None
    return CheckpointView(
        id=row.id,
        run_id=row.run_id,
        session_id=row.session_id,
        parent_id=row.parent_id,
        seq=row.seq,
        commit=row.commit,
        reason=row.reason,
        handoff=json.loads(row.handoff_json) if row.handoff_json else None,
        features=json.loads(row.features_json),
        commits=json.loads(row.commits_json),
        spent_usd=row.spent_usd,
        tokens=row.tokens,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class ApprovalView:
    id: int
    run_id: str
    session_id: int | None
    kind: str
    state: str
    request: dict[str, Any]
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "kind": self.kind,
            "state": self.state,
            "request": self.request,
            "requested_at": iso(self.requested_at),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at) if self.decided_at else None,
            "comment": self.comment,
        }

    @property
    def asks(self) -> ApprovalRequest:
        """The request as the typed model of its kind (`ToolCallRequest`, `QuestionRequest`, ...)."""
        return read_request(self.kind, self.request)


@dataclass(frozen=True)
class BreakerView:
    name: str
    state: str
    tripped_at: datetime | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "tripped_at": iso(self.tripped_at) if self.tripped_at else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ConversationView:
    id: int
    run_id: str
    session_id: int | None
    checkpoint_id: int
    reason: str
    messages: list[dict[str, Any]]
    resumed_by: int | None

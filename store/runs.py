"""Runs, sessions and checkpoints: the writes that go with them and the read models handed out.

Read models are frozen dataclasses (`RunView`, `SessionView`, `CheckpointView`), never live
table rows. Every write that changes what happened also appends its event in the same
transaction, so the log and the tables never disagree.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, text
from sqlmodel import Session, col, select

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    ApprovalNotFound,
    CheckpointNotFound,
    InvalidTransition,
    RunNotFound,
    SessionNotFound,
)
from longrun.store.models import (
    FINAL_SESSION_STATES,
    Checkpoint,
    Run,
    RunSession,
    SessionState,
    iso,
    utcnow,
)

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
            "tokens": self.usage.to_json(),
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
            "tokens": self.usage.to_json(),
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


# --- runs -------------------------------------------------------------------------------------


def insert_run(
    store: Store,
    *,
    run_id: str,
    name: str,
    goal: str,
    spec: dict[str, Any],
    spec_path: str | None,
    workspace: str,
    branch: str,
    state: str,
    parent_run_id: str | None = None,
) -> RunView:
    now = utcnow()
    row = Run(
        id=run_id,
        name=name,
        goal=goal,
        spec_json=log.canonical_json(spec),
        spec_path=spec_path,
        workspace=workspace,
        branch=branch,
        state=state,
        created_at=now,
        updated_at=now,
        parent_run_id=parent_run_id,
    )
    with store.orm(write=True) as db:
        db.add(row)
        db.flush()
        log.append(
            db.connection(),
            run_id,
            "run_created",
            {"name": name, "workspace": workspace, "branch": branch, "spec_path": spec_path, "state": state},
        )
    return _run_view(row)


def get_run(store: Store, ref: str) -> RunView:
    """The run whose id is `ref`, whose id starts with `ref`, or whose name is `ref` (newest first)."""
    with store.orm() as db:
        row = db.get(Run, ref)
        if row is None:
            by_prefix = db.exec(select(Run).where(col(Run.id).startswith(ref)).limit(2)).all() if ref else []
            if len(by_prefix) == 1:
                row = by_prefix[0]
            else:
                row = db.exec(
                    select(Run).where(Run.name == ref).order_by(col(Run.created_at).desc()).limit(1)
                ).first()
        if row is None:
            raise RunNotFound(f"no run with id or name {ref!r} (see `longrun run list`)")
        return _run_view(row)


def list_runs(store: Store) -> list[RunView]:
    with store.orm() as db:
        return [_run_view(r) for r in db.exec(select(Run).order_by(col(Run.created_at))).all()]


def set_run_state(conn: Connection, run_id: str, state: str, reason: str | None = None) -> None:
    conn.execute(
        text("UPDATE run SET state = :s, state_reason = :r, updated_at = :t WHERE id = :id"),
        {"s": state, "r": reason, "t": iso(utcnow()), "id": run_id},
    )


# --- sessions ---------------------------------------------------------------------------------


def create_session(
    store: Store,
    run_id: str,
    *,
    time_box: timedelta,
    wrap_up: timedelta,
    now: datetime | None = None,
    not_after: datetime | None = None,
) -> SessionView:
    """A new session row numbered after the run's last one, starting from the run's head checkpoint.

    Refused when the run already has a live session: the check and the insert are one write
    transaction, so two launchers can never start two sessions of one run. `not_after` clips the
    deadline (a cron window's end); the wrap-up then shrinks to fit.
    """
    now = now or utcnow()
    deadline = now + time_box
    if not_after is not None and not_after < deadline:
        deadline = not_after
        wrap_up = min(wrap_up, (deadline - now) / 5)
    with store.orm(write=True) as db:
        run = db.get(Run, run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        live = db.exec(
            select(RunSession).where(
                RunSession.run_id == run_id,
                col(RunSession.state).not_in([str(s) for s in FINAL_SESSION_STATES]),
            )
        ).first()
        if live is not None:
            raise InvalidTransition(f"run {run.name} ({run_id}) already has session {live.n} running")
        last = db.exec(select(func.max(RunSession.n)).where(RunSession.run_id == run_id)).one()
        row = RunSession(
            run_id=run_id,
            n=(last or 0) + 1,
            state=SessionState.starting,
            created_at=now,
            deadline_at=deadline,
            wrap_up_at=deadline - wrap_up,
            from_checkpoint_id=run.head_checkpoint_id,
        )
        db.add(row)
        db.flush()
        db.connection().execute(
            text(
                "UPDATE run SET state = 'running', state_reason = :r, updated_at = :t "
                "WHERE id = :id AND state IN ('draft', 'scheduled')"
            ),
            {"r": f"session {row.n} running", "t": iso(now), "id": run_id},
        )
        log.append(
            db.connection(),
            run_id,
            "session_created",
            {
                "n": row.n,
                "deadline_at": iso(deadline),
                "wrap_up_at": iso(row.wrap_up_at),
                "from_checkpoint_id": row.from_checkpoint_id,
            },
            session_id=row.id,
        )
        return _session_view(row)


def get_session(store: Store, session_id: int) -> SessionView:
    with store.orm() as db:
        row = db.get(RunSession, session_id)
        if row is None:
            raise SessionNotFound(f"no session with id {session_id}")
        return _session_view(row)


def list_sessions(store: Store, run_id: str) -> list[SessionView]:
    with store.orm() as db:
        rows = db.exec(
            select(RunSession).where(RunSession.run_id == run_id).order_by(col(RunSession.n))
        ).all()
        return [_session_view(r) for r in rows]


def session_started(store: Store, session_id: int, pid: int) -> SessionView:
    """The session's process is up: record its pid and first heartbeat."""
    now = utcnow()
    with store.orm(write=True) as db:
        row = _session_row(db, session_id)
        row.pid = pid
        row.state = SessionState.running
        row.started_at = now
        row.heartbeat_at = now
        db.add(row)
        db.flush()
        log.append(
            db.connection(), row.run_id, "session_started", {"n": row.n, "pid": pid}, session_id=row.id
        )
        return _session_view(row)


def set_session_pid(store: Store, session_id: int, pid: int) -> None:
    with store.writing() as conn:
        conn.execute(text("UPDATE session SET pid = :p WHERE id = :id"), {"p": pid, "id": session_id})


def heartbeat(store: Store, session_id: int) -> bool:
    """Update the heartbeat; returns whether a stop was requested."""
    with store.writing() as conn:
        conn.execute(
            text("UPDATE session SET heartbeat_at = :t WHERE id = :id"),
            {"t": iso(utcnow()), "id": session_id},
        )
        row = conn.execute(
            text("SELECT stop_requested FROM session WHERE id = :id"), {"id": session_id}
        ).first()
    return bool(row and row[0])


def set_session_state(conn: Connection, session_id: int, state: str) -> None:
    conn.execute(text("UPDATE session SET state = :s WHERE id = :id"), {"s": state, "id": session_id})


def end_session(
    store: Store, session_id: int, state: SessionState, reason: str, data: dict[str, Any] | None = None
) -> SessionView | None:
    """Record the session's end once; returns None when it had already ended (the first word wins)."""
    now = utcnow()
    with store.orm(write=True) as db:
        row = _session_row(db, session_id)
        if row.state in FINAL_SESSION_STATES:
            return None
        row.state = state
        row.ended_at = now
        row.end_reason = reason
        db.add(row)
        db.flush()
        log.append(
            db.connection(),
            row.run_id,
            "session_ended",
            {"n": row.n, "state": str(state), "reason": reason} | (data or {}),
            session_id=row.id,
        )
        return _session_view(row)


def live_sessions(store: Store) -> list[SessionView]:
    """Every session of every run that has not ended (the supervisor's watch list)."""
    with store.orm() as db:
        rows = db.exec(
            select(RunSession).where(col(RunSession.state).not_in([str(s) for s in FINAL_SESSION_STATES]))
        ).all()
        return [_session_view(r) for r in rows]


def live_sessions_of(store: Store, run_id: str) -> list[SessionView]:
    """The run's sessions that have not ended (at most one, in practice)."""
    with store.orm() as db:
        rows = db.exec(
            select(RunSession)
            .where(RunSession.run_id == run_id)
            .where(col(RunSession.state).not_in([str(s) for s in FINAL_SESSION_STATES]))
        ).all()
        return [_session_view(r) for r in rows]


def session_count(store: Store, run_id: str) -> int:
    """How many sessions the run has had (its last session's number: numbers have no gaps)."""
    with store.reading() as conn:
        return int(
            conn.execute(
                text("SELECT coalesce(max(n), 0) FROM session WHERE run_id = :run"), {"run": run_id}
            ).scalar_one()
        )


def unsettled_sessions(store: Store) -> list[SessionView]:
    """Ended sessions the supervisor has not yet judged and planned after."""
    with store.orm() as db:
        rows = db.exec(
            select(RunSession)
            .where(col(RunSession.state).in_([str(s) for s in FINAL_SESSION_STATES]))
            .where(col(RunSession.settled_at).is_(None))
            .order_by(col(RunSession.id))
        ).all()
        return [_session_view(r) for r in rows]


def mark_settled(conn: Connection, session_id: int) -> None:
    conn.execute(
        text("UPDATE session SET settled_at = :t WHERE id = :id"), {"t": iso(utcnow()), "id": session_id}
    )


def request_session_end(conn: Connection, session_id: int, *, kill: bool) -> None:
    """Ask a live session to wrap up and end (`kill=False`) or to be ended now (`kill=True`)."""
    column = "kill_requested" if kill else "stop_requested"
    conn.execute(text(f"UPDATE session SET {column} = 1 WHERE id = :id"), {"id": session_id})


RUN_PLAN_FIELDS = ("due_at", "next_session_at", "next_reason", "hold_until", "window_ends_at")


def set_run_plan(conn: Connection, run_id: str, **fields: datetime | str | None) -> None:
    """Update the supervisor's planning fields of a run (when the next session is due and why)."""
    unknown = set(fields) - set(RUN_PLAN_FIELDS)
    if unknown:
        raise ValueError(f"not a planning field: {sorted(unknown)}")
    values = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(
        text(f"UPDATE run SET {assignments}, updated_at = :now WHERE id = :id"),
        values | {"id": run_id, "now": iso(utcnow())},
    )


def _session_row(db: Session, session_id: int) -> RunSession:
    row = db.get(RunSession, session_id)
    if row is None:
        raise SessionNotFound(f"no session with id {session_id}")
    return row


def add_usage(
    conn: Connection, run_id: str, session_id: int | None, usage: Usage, at: datetime | None = None
) -> None:
    """Add a model call's usage to the run's, the session's and the day's totals, in the caller's
    transaction (the one that appends the call's event), so the log and the totals never drift."""
    params = {k: getattr(usage, k) for k in TOKEN_KINDS} | {"usd": usage.usd}
    assignments = ", ".join(f"{k} = {k} + :{k}" for k in TOKEN_KINDS) + ", spent_usd = spent_usd + :usd"
    conn.execute(text(f"UPDATE run SET {assignments} WHERE id = :id"), params | {"id": run_id})
    if session_id is not None:
        conn.execute(text(f"UPDATE session SET {assignments} WHERE id = :id"), params | {"id": session_id})
    day = utc_day(at or utcnow())
    conn.execute(
        text(
            "INSERT OR IGNORE INTO spend_day (run_id, day, spent_usd, input_tokens, output_tokens, "
            "cache_write_tokens, cache_read_tokens) VALUES (:run, :day, 0, 0, 0, 0, 0)"
        ),
        {"run": run_id, "day": day},
    )
    conn.execute(
        text(f"UPDATE spend_day SET {assignments} WHERE run_id = :run AND day = :day"),
        params | {"run": run_id, "day": day},
    )


def utc_day(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def day_usage(store: Store, run_id: str, day: str) -> Usage:
    with store.reading() as conn:
        row = conn.execute(
            text(
                "SELECT input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, spent_usd "
                "FROM spend_day WHERE run_id = :run AND day = :day"
            ),
            {"run": run_id, "day": day},
        ).first()
    return Usage(*row) if row else Usage()


def count_events_since(store: Store, run_id: str, kind: str, since: datetime) -> int:
    with store.reading() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM event WHERE run_id = :run AND kind = :kind AND ts >= :since"),
                {"run": run_id, "kind": kind, "since": iso(since)},
            ).scalar_one()
        )


def spent_since(store: Store, run_id: str, since: datetime) -> float:
    """USD of the run's model calls since `since` (for the spend-rate breaker), from the log."""
    with store.reading() as conn:
        rows = conn.execute(
            text("SELECT data FROM event WHERE run_id = :run AND kind = 'model_call' AND ts >= :since"),
            {"run": run_id, "since": iso(since)},
        ).all()
    return sum(json.loads(r[0]).get("usage", {}).get("usd", 0.0) for r in rows)


# --- checkpoints ------------------------------------------------------------------------------


def add_checkpoint(
    store: Store,
    *,
    run_id: str,
    session_id: int | None,
    commit: str,
    reason: str,
    handoff: dict[str, Any] | None,
    commits: list[dict[str, str]],
    features: dict[str, str] | None = None,
) -> CheckpointView:
    """Record a checkpoint as the run's new head, with its event, in one transaction."""
    now = utcnow()
    with store.orm(write=True) as db:
        run = db.get(Run, run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if features is None:
            features = _head_features(db, run.head_checkpoint_id)
        conn = db.connection()
        seq = log.head_seq(conn, run_id) + 1
        row = Checkpoint(
            run_id=run_id,
            session_id=session_id,
            parent_id=run.head_checkpoint_id,
            seq=seq,
            commit=commit,
            reason=reason,
            handoff_json=log.canonical_json(handoff) if handoff is not None else None,
            features_json=log.canonical_json(features),
            commits_json=log.canonical_json(commits),
            spent_usd=run.spent_usd,
            tokens=run.input_tokens + run.output_tokens + run.cache_write_tokens + run.cache_read_tokens,
            created_at=now,
        )
        db.add(row)
        db.flush()
        run.head_checkpoint_id = row.id
        run.updated_at = now
        db.add(run)
        db.flush()
        log.append(
            conn,
            run_id,
            "checkpoint",
            {"checkpoint_id": row.id, "commit": commit, "reason": reason, "parent_id": row.parent_id},
            session_id=session_id,
        )
        return _checkpoint_view(row)


def _head_features(db: Session, head_id: int | None) -> dict[str, str]:
    if head_id is None:
        return {}
    head = db.get(Checkpoint, head_id)
    return json.loads(head.features_json) if head else {}


def get_checkpoint(store: Store, checkpoint_id: int, run_id: str | None = None) -> CheckpointView:
    with store.orm() as db:
        row = db.get(Checkpoint, checkpoint_id)
        if row is None or (run_id is not None and row.run_id != run_id):
            raise CheckpointNotFound(
                f"no checkpoint {checkpoint_id}" + (f" in run {run_id}" if run_id else "")
            )
        return _checkpoint_view(row)


def list_checkpoints(store: Store, run_id: str) -> list[CheckpointView]:
    with store.orm() as db:
        rows = db.exec(
            select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(col(Checkpoint.id))
        ).all()
        return [_checkpoint_view(r) for r in rows]


def checkpoint_ancestors(store: Store, checkpoint_id: int, limit: int) -> list[CheckpointView]:
    """The checkpoint and up to `limit - 1` of its ancestors, newest first (a bounded walk, in
    one query: the dashboard reads this while it draws, and each query waits its turn there)."""
    walk = text(
        "WITH RECURSIVE line(id, depth) AS ("
        "SELECT :id, 0 UNION ALL "
        "SELECT c.parent_id, line.depth + 1 FROM checkpoint c JOIN line ON c.id = line.id "
        "WHERE c.parent_id IS NOT NULL AND line.depth + 1 < :limit) "
        "SELECT checkpoint.* FROM line JOIN checkpoint ON checkpoint.id = line.id ORDER BY line.depth"
    )
    if limit < 1:
        return []
    with store.orm() as db:
        rows = db.execute(select(Checkpoint).from_statement(walk), {"id": checkpoint_id, "limit": limit})
        return [_checkpoint_view(row) for row in rows.scalars()]


# --- verdicts ---------------------------------------------------------------------------------


def add_verdicts(store: Store, run_id: str, checkpoint_id: int, verdicts: list[VerdictView]) -> None:
    """Store verdicts of one checkpoint, each as an event too, and fold them into its feature status."""
    with store.writing() as conn:
        add_verdicts_in(conn, run_id, checkpoint_id, verdicts)


def add_verdicts_in(conn: Connection, run_id: str, checkpoint_id: int, verdicts: list[VerdictView]) -> None:
    """`add_verdicts` in the caller's transaction."""
    now = utcnow()
    row = conn.execute(
        text("SELECT features_json FROM checkpoint WHERE id = :id AND run_id = :run"),
        {"id": checkpoint_id, "run": run_id},
    ).first()
    if row is None:
        raise CheckpointNotFound(f"no checkpoint {checkpoint_id} in run {run_id}")
    status = json.loads(row[0])
    for v in verdicts:
        conn.execute(
            text(
                "INSERT INTO verdict (run_id, checkpoint_id, feature_id, judge, status, evidence_json, "
                "created_at) VALUES (:run, :cp, :feature, :judge, :status, :evidence, :now)"
            ),
            {
                "run": run_id,
                "cp": checkpoint_id,
                "feature": v.feature_id,
                "judge": v.judge,
                "status": v.status,
                "evidence": log.canonical_json(v.evidence),
                "now": iso(now),
            },
        )
        status[v.feature_id] = v.status
    # Feature status on the checkpoint row is derived data (the verdict rows are the record),
    # kept so that a resume context never has to scan verdict history.
    conn.execute(
        text("UPDATE checkpoint SET features_json = :f WHERE id = :id"),
        {"f": log.canonical_json(status), "id": checkpoint_id},
    )
    log.append_many(
        conn,
        run_id,
        [
            (
                "verdict",
                {
                    "checkpoint_id": checkpoint_id,
                    "feature_id": v.feature_id,
                    "judge": v.judge,
                    "status": v.status,
                    "evidence": v.evidence,
                },
                None,
                now,
            )
            for v in verdicts
        ],
    )


def latest_verdicts(
    store: Store, run_id: str, feature_ids: list[str] | None = None
) -> dict[str, VerdictView]:
    """Each feature's most recent verdict in the run (by checkpoint, then time).

    One indexed look-up per feature, so it costs the same however many verdicts the run has.
    """
    with store.reading() as conn:
        if feature_ids is None:
            feature_ids = [
                r[0]
                for r in conn.execute(
                    text("SELECT DISTINCT feature_id FROM verdict WHERE run_id = :run"), {"run": run_id}
                ).all()
            ]
        out: dict[str, VerdictView] = {}
        for feature_id in feature_ids:
            row = conn.execute(
                text(
                    "SELECT feature_id, checkpoint_id, judge, status, evidence_json, created_at FROM verdict "
                    "WHERE run_id = :run AND feature_id = :f ORDER BY checkpoint_id DESC, id DESC LIMIT 1"
                ),
                {"run": run_id, "f": feature_id},
            ).first()
            if row is not None:
                out[feature_id] = _verdict_view(row)
    return out


def run_verdicts(store: Store, run_id: str) -> list[VerdictView]:
    """Every verdict of a run, by checkpoint, then feature, then time (for the verdict matrix)."""
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT feature_id, checkpoint_id, judge, status, evidence_json, created_at FROM verdict "
                "WHERE run_id = :run ORDER BY checkpoint_id, feature_id, id"
            ),
            {"run": run_id},
        ).all()
    return [_verdict_view(r) for r in rows]


def verdicts_at(store: Store, checkpoint_ids: list[int]) -> dict[int, list[VerdictView]]:
    """The verdicts given at each of these checkpoints (a bounded set: one line of history)."""
    if not checkpoint_ids:
        return {}
    marks = ",".join(f":c{i}" for i in range(len(checkpoint_ids)))
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT feature_id, checkpoint_id, judge, status, evidence_json, created_at FROM verdict "
                f"WHERE checkpoint_id IN ({marks}) ORDER BY id"
            ),
            {f"c{i}": c for i, c in enumerate(checkpoint_ids)},
        ).all()
    out: dict[int, list[VerdictView]] = {c: [] for c in checkpoint_ids}
    for row in rows:
        out[row[1]].append(_verdict_view(row))
    return out


def _verdict_view(row: Any) -> VerdictView:
    return VerdictView(row[0], row[1], row[2], row[3], json.loads(row[4]), datetime.fromisoformat(row[5]))


# --- approvals and breakers -------------------------------------------------------------------


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


def add_approval(
    conn: Connection,
    run_id: str,
    kind: str,
    request: dict[str, Any],
    session_id: int | None = None,
    *,
    expires_at: datetime | None = None,
) -> int:
    """A pending approval, with its event, in the caller's transaction; returns its id."""
    now = utcnow()
    result = conn.execute(
        text(
            "INSERT INTO approval (run_id, session_id, kind, state, request_json, requested_at, expires_at) "
            "VALUES (:run, :session, :kind, 'pending', :request, :now, :expires)"
        ),
        {
            "run": run_id,
            "session": session_id,
            "kind": kind,
            "request": log.canonical_json(request),
            "now": iso(now),
            "expires": iso(expires_at) if expires_at else None,
        },
    )
    approval_id = int(result.lastrowid or 0)
    log.append(
        conn,
        run_id,
        "approval_requested",
        {"approval_id": approval_id, "kind": kind, "request": request},
        session_id=session_id,
    )
    return approval_id


_APPROVAL_COLUMNS = (
    "id, run_id, session_id, kind, state, request_json, requested_at, decided_by, decided_at, comment"
)


def _approval_view(r: Any) -> ApprovalView:
    return ApprovalView(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        json.loads(r[5]),
        datetime.fromisoformat(r[6]),
        r[7],
        datetime.fromisoformat(r[8]) if r[8] else None,
        r[9],
    )


def list_approvals(store: Store, run_id: str | None = None, state: str | None = None) -> list[ApprovalView]:
    sql = f"SELECT {_APPROVAL_COLUMNS} FROM approval WHERE 1=1"
    params: dict[str, Any] = {}
    if run_id is not None:
        sql += " AND run_id = :run"
        params["run"] = run_id
    if state is not None:
        sql += " AND state = :state"
        params["state"] = state
    with store.reading() as conn:
        rows = conn.execute(text(sql + " ORDER BY id"), params).all()
    return [_approval_view(r) for r in rows]


def recent_decisions(store: Store, run_id: str, limit: int) -> list[ApprovalView]:
    """The run's latest decided approvals, newest first (an indexed look-up, bounded)."""
    with store.reading() as conn:
        rows = conn.execute(
            text(
                f"SELECT {_APPROVAL_COLUMNS} FROM approval WHERE run_id = :run AND state != 'pending' "
                "ORDER BY decided_at DESC, id DESC LIMIT :limit"
            ),
            {"run": run_id, "limit": limit},
        ).all()
    return [_approval_view(r) for r in rows]


def get_approval(store: Store, approval_id: int) -> ApprovalView:
    with store.reading() as conn:
        row = conn.execute(
            text(f"SELECT {_APPROVAL_COLUMNS} FROM approval WHERE id = :id"), {"id": approval_id}
        ).first()
    if row is None:
        raise ApprovalNotFound(f"no approval {approval_id} (see `longrun approvals`)")
    return _approval_view(row)


def issue_token(conn: Connection, approval_id: int) -> str:
    """A single-use, unguessable token that decides this approval and nothing else; only its
    SHA-256 is stored, so the token itself must go straight to whoever may decide."""
    token = secrets.token_urlsafe(24)
    conn.execute(
        text("UPDATE approval SET token_hash = :h WHERE id = :id"),
        {"h": hashlib.sha256(token.encode()).hexdigest(), "id": approval_id},
    )
    return token


def approval_of_token(store: Store, token: str) -> int | None:
    """The pending approval a token was issued for, if any."""
    with store.reading() as conn:
        row = conn.execute(
            text("SELECT id FROM approval WHERE token_hash = :h AND state = 'pending'"),
            {"h": hashlib.sha256(token.encode()).hexdigest()},
        ).first()
    return int(row[0]) if row else None


def overdue_approvals(store: Store, now: datetime) -> list[ApprovalView]:
    with store.reading() as conn:
        rows = conn.execute(
            text(
                f"SELECT {_APPROVAL_COLUMNS} FROM approval WHERE state = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= :now ORDER BY id"
            ),
            {"now": iso(now)},
        ).all()
    return [_approval_view(r) for r in rows]


def decide_approval(conn: Connection, approval_id: int, state: str, by: str, comment: str | None) -> bool:
    """Decide a pending approval once, with its event, in the caller's transaction; False when it
    was no longer pending (the first decision wins)."""
    row = conn.execute(
        text(
            "UPDATE approval SET state = :state, decided_by = :by, decided_at = :now, comment = :comment, "
            "token_hash = NULL WHERE id = :id AND state = 'pending' RETURNING run_id, session_id"
        ),
        {"state": state, "by": by, "now": iso(utcnow()), "comment": comment, "id": approval_id},
    ).first()
    if row is None:
        return False
    log.append(
        conn,
        row[0],
        "approval_decided",
        {"approval_id": approval_id, "state": state, "by": by, "comment": comment},
        session_id=row[1],
    )
    return True


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


def breakers(store: Store, run_id: str) -> dict[str, BreakerView]:
    """The run's breakers that ever left `closed` (any other is closed)."""
    with store.reading() as conn:
        rows = conn.execute(
            text("SELECT name, state, tripped_at, reason FROM breaker WHERE run_id = :run"), {"run": run_id}
        ).all()
    return {r[0]: BreakerView(r[0], r[1], datetime.fromisoformat(r[2]) if r[2] else None, r[3]) for r in rows}


def set_breaker(conn: Connection, run_id: str, name: str, state: str, reason: str | None = None) -> None:
    tripped = iso(utcnow()) if state == "open" else None
    conn.execute(
        text(
            "INSERT INTO breaker (run_id, name, state, tripped_at, reason) "
            "VALUES (:run, :name, :state, :t, :r) "
            "ON CONFLICT (run_id, name) DO UPDATE SET state = :state, "
            "tripped_at = COALESCE(:t, tripped_at), reason = COALESCE(:r, reason)"
        ),
        {"run": run_id, "name": name, "state": state, "t": tripped, "r": reason},
    )
    conn.execute(
        text("UPDATE run SET updated_at = :now WHERE id = :id"), {"now": iso(utcnow()), "id": run_id}
    )


def set_run_spec(conn: Connection, run_id: str, spec: dict[str, Any]) -> None:
    """Replace the run's stored spec (a budget raise); the caller writes the event saying why."""
    conn.execute(
        text("UPDATE run SET spec_json = :spec, updated_at = :t WHERE id = :id"),
        {"spec": log.canonical_json(spec), "t": iso(utcnow()), "id": run_id},
    )


# --- conversations ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationView:
    id: int
    run_id: str
    session_id: int | None
    checkpoint_id: int
    reason: str
    messages: list[dict[str, Any]]
    resumed_by: int | None


def add_conversation(
    conn: Connection,
    run_id: str,
    session_id: int | None,
    checkpoint_id: int,
    reason: str,
    messages: list[dict[str, Any]],
) -> int:
    """Keep a conversation, in the caller's transaction; returns its id."""
    result = conn.execute(
        text(
            "INSERT INTO conversation (run_id, session_id, checkpoint_id, reason, messages_json, created_at) "
            "VALUES (:run, :session, :cp, :reason, :messages, :now)"
        ),
        {
            "run": run_id,
            "session": session_id,
            "cp": checkpoint_id,
            "reason": reason,
            "messages": json.dumps(messages, ensure_ascii=False, separators=(",", ":")),
            "now": iso(utcnow()),
        },
    )
    return int(result.lastrowid or 0)


_CONVERSATION_AT = (
    "SELECT c.id, c.run_id, c.session_id, c.checkpoint_id, c.reason, c.messages_json, c.resumed_by "
    "FROM conversation c JOIN checkpoint k ON k.id = :cp AND k.session_id = c.session_id "
    "WHERE c.run_id = :run"
)


def _conversation_at(store: Store, run_id: str, checkpoint_id: int, where: str) -> ConversationView | None:
    """The newest conversation kept by the session that made a checkpoint, among those `where` allows."""
    with store.reading() as conn:
        row = conn.execute(
            text(f"{_CONVERSATION_AT} {where} ORDER BY c.id DESC LIMIT 1"),
            {"run": run_id, "cp": checkpoint_id},
        ).first()
    if row is None:
        return None
    return ConversationView(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])


def paused_conversation(store: Store, run_id: str, checkpoint_id: int | None) -> ConversationView | None:
    """The conversation to go on from at checkpoint `checkpoint_id`: the one its session paused on
    for a person, or one a person asked to resume exactly, when nobody has gone on from it yet."""
    if checkpoint_id is None:
        return None
    where = "AND c.reason IN ('approval', 'exact') AND c.resumed_by IS NULL"
    return _conversation_at(store, run_id, checkpoint_id, where)


def mark_resumed(conn: Connection, conversation_id: int, session_id: int) -> None:
    conn.execute(
        text("UPDATE conversation SET resumed_by = :s WHERE id = :id"),
        {"s": session_id, "id": conversation_id},
    )


def set_head_checkpoint(conn: Connection, run_id: str, checkpoint_id: int) -> None:
    """Make a checkpoint the run's head (a rewind): the next session and checkpoint go on from it."""
    conn.execute(
        text("UPDATE run SET head_checkpoint_id = :cp, updated_at = :now WHERE id = :id"),
        {"cp": checkpoint_id, "now": iso(utcnow()), "id": run_id},
    )


def conversation_of(store: Store, run_id: str, checkpoint_id: int) -> ConversationView | None:
    """The newest conversation kept by the session that made a checkpoint (None when it kept none)."""
    return _conversation_at(store, run_id, checkpoint_id, "")

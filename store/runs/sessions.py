"""Sessions: created, started, beating, ended, settled; and the live ones the supervisor watches."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, text
from sqlmodel import Session, col, select

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    InvalidTransition,
    RunNotFound,
    SessionNotFound,
)
from longrun.store.models import (
    FINAL_SESSION_STATES,
    Run,
    RunSession,
    SessionState,
    iso,
    utcnow,
)
from longrun.store.runs.views import SessionView, _session_view


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
    with store.orm(write=True) as db:
        now = utcnow()
        row = _session_row(db, session_id)
        row.pid = pid
        row.state = SessionState.running
        row.started_at = now
        row.heartbeat_at = now
        db.add(row)
        db.flush()
        log.append(
            db.connection(),
            row.run_id,
            "session_started",
            {"n": row.n, "pid": pid},
            session_id=row.id,
            ts=now,
        )
        return _session_view(row)


def claim_session(
    store: Store, session_id: int, pid: int, data: dict[str, Any], *, now: datetime | None = None
) -> SessionView | None:
    """A worker on another machine takes a session that was queued for it, once: records its pid
    and a first heartbeat, and a `session_claimed` event with `data` (who took it).

    None when the session cannot be taken: it is no longer `starting`, another worker already
    took it (its pid is set), or its wrap-up time has come (it would have no time to work). The
    check and the write are one write transaction, so a task the broker delivers twice never runs
    its session twice."""
    with store.orm(write=True) as db:
        now = now or utcnow()
        row = _session_row(db, session_id)
        if row.state != SessionState.starting or row.pid is not None or now >= row.wrap_up_at:
            return None
        row.pid = pid
        row.heartbeat_at = now
        db.add(row)
        db.flush()
        log.append(
            db.connection(), row.run_id, "session_claimed", {"n": row.n, **data}, session_id=row.id, ts=now
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
    with store.orm(write=True) as db:
        now = utcnow()
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
            (data or {}) | {"n": row.n, "state": str(state), "reason": reason},
            session_id=row.id,
            ts=now,
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


def _session_row(db: Session, session_id: int) -> RunSession:
    row = db.get(RunSession, session_id)
    if row is None:
        raise SessionNotFound(f"no session with id {session_id}")
    return row

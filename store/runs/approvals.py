"""Approvals: what waits for a person, the single-use tokens that decide it, and the decisions."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    ApprovalNotFound,
)
from longrun.store.models import (
    iso,
    utcnow,
)
from longrun.store.runs.views import ApprovalView


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
        ts=now,
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
    now = utcnow()
    row = conn.execute(
        text(
            "UPDATE approval SET state = :state, decided_by = :by, decided_at = :now, comment = :comment, "
            "token_hash = NULL WHERE id = :id AND state = 'pending' RETURNING run_id, session_id"
        ),
        {"state": state, "by": by, "now": iso(now), "comment": comment, "id": approval_id},
    ).first()
    if row is None:
        return False
    log.append(
        conn,
        row[0],
        "approval_decided",
        {"approval_id": approval_id, "state": state, "by": by, "comment": comment},
        session_id=row[1],
        ts=now,
    )
    return True

"""Checkpoints: the tree of durable points a run resumes from (references and deltas, never copies)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    CheckpointNotFound,
    RunNotFound,
)
from longrun.store.log import text_digest
from longrun.store.models import (
    Checkpoint,
    Run,
    utcnow,
)
from longrun.store.runs.views import CheckpointView, _checkpoint_view


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
    """Record a checkpoint as the run's new head, with its event, in one transaction.

    The event holds what `longrun verify` checks the row against: besides the commit and the
    reason, the spend and tokens at the checkpoint, the feature status it started with and the
    SHA-256 of its handoff and commit list as stored."""
    with store.orm(write=True) as db:
        now = utcnow()
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
            {
                "checkpoint_id": row.id,
                "commit": commit,
                "reason": reason,
                "parent_id": row.parent_id,
                "spent_usd": row.spent_usd,
                "tokens": row.tokens,
                "features": features,
                "handoff_sha256": text_digest(row.handoff_json),
                "commits_sha256": text_digest(row.commits_json),
            },
            session_id=session_id,
            ts=now,
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

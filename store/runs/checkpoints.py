"""Checkpoints: the tree of durable points a run resumes from (references and deltas, never copies)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import CheckpointNotFound, RunNotFound
from longrun.store.log import text_digest
from longrun.store.models import Checkpoint, iso, utcnow
from longrun.store.runs.views import CheckpointView, _checkpoint_view

# The checkpoint write runs on the driver's connection inside one write transaction: ORM objects
# (a Run and a Checkpoint loaded, built, flushed and refreshed) cost several times the rows'
# own writes, and a session takes a checkpoint every few calls.
_HEAD = (
    "SELECT r.head_checkpoint_id, r.spent_usd, "
    "r.input_tokens + r.output_tokens + r.cache_write_tokens + r.cache_read_tokens, "
    "c.features_json, (SELECT max(seq) FROM event WHERE run_id = r.id) "
    "FROM run r LEFT JOIN checkpoint c ON c.id = r.head_checkpoint_id WHERE r.id = ?"
)
_INSERT = (
    'INSERT INTO checkpoint (run_id, session_id, parent_id, seq, "commit", reason, handoff_json, '
    "features_json, commits_json, spent_usd, tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_HEAD = "UPDATE run SET head_checkpoint_id = ?, updated_at = ? WHERE id = ?"
_HEAD_COMMIT = 'SELECT c."commit" FROM run r JOIN checkpoint c ON c.id = r.head_checkpoint_id WHERE r.id = ?'


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
    reason, the spend and tokens at the checkpoint, the feature status it started with (the
    parent's, unless `features` is given) and the SHA-256 of its handoff and commit list as
    stored. The row holds the deltas only: this checkpoint's handoff and the commits since its
    parent, never what came before."""
    handoff_json = log.canonical_json(handoff) if handoff is not None else None
    commits_json = log.canonical_json(commits)
    with store.hot() as (raw, heads):
        head = raw.execute(_HEAD, (run_id,)).fetchone()
        if head is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        parent_id, spent_usd, tokens, parent_features, last_seq = head
        if features is None:
            features = json.loads(parent_features) if parent_features else {}
        else:
            features = dict(features)  # the view keeps its own, as one read back would
        features_json = log.canonical_json(features)
        now = utcnow()
        stamp = iso(now)
        seq = (last_seq or 0) + 1
        checkpoint_id = raw.execute(
            _INSERT,
            (
                run_id,
                session_id,
                parent_id,
                seq,
                commit,
                reason,
                handoff_json,
                features_json,
                commits_json,
                spent_usd,
                tokens,
                stamp,
            ),
        ).lastrowid
        assert checkpoint_id is not None, "an INSERT gives its row's id"
        raw.execute(_MOVE_HEAD, (checkpoint_id, stamp, run_id))
        appended = log.append_raw(
            raw,
            run_id,
            [
                (
                    "checkpoint",
                    {
                        "checkpoint_id": checkpoint_id,
                        "commit": commit,
                        "reason": reason,
                        "parent_id": parent_id,
                        "spent_usd": spent_usd,
                        "tokens": tokens,
                        "features": features,
                        "handoff_sha256": text_digest(handoff_json),
                        "commits_sha256": text_digest(commits_json),
                    },
                    session_id,
                    now,
                )
            ],
        )
        assert appended is not None, "one event was given"
        heads[run_id] = appended
        # The row took its seq before the event was chained: they are one write, so they agree.
        assert appended[0] == seq, f"checkpoint {checkpoint_id} took seq {seq}, its event {appended[0]}"
    return CheckpointView(
        id=checkpoint_id,
        run_id=run_id,
        session_id=session_id,
        parent_id=parent_id,
        seq=seq,
        commit=commit,
        reason=reason,
        handoff=json.loads(handoff_json) if handoff_json is not None else None,
        features=features,
        commits=json.loads(commits_json),
        spent_usd=spent_usd,
        tokens=tokens,
        created_at=now,
    )


def head_commit(store: Store, run_id: str) -> str | None:
    """The commit of the run's head checkpoint (None before its first): where the commits a new
    checkpoint lists begin."""
    # One statement, so no transaction of its own: it runs in autocommit on the hot connection.
    with store.translated():
        row = store.hot_connection().execute(_HEAD_COMMIT, (run_id,)).fetchone()
    return row[0] if row else None


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

"""Verdicts: the judge's decision on each feature at each checkpoint, with its evidence."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    CheckpointNotFound,
)
from longrun.store.models import (
    iso,
    utcnow,
)
from longrun.store.runs.views import VerdictView


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
    ids = []
    for v in verdicts:
        inserted = conn.execute(
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
        ids.append(int(inserted.lastrowid or 0))
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
                    "verdict_id": verdict_id,
                    "checkpoint_id": checkpoint_id,
                    "feature_id": v.feature_id,
                    "judge": v.judge,
                    "status": v.status,
                    "evidence": v.evidence,
                },
                None,
                now,
            )
            for v, verdict_id in zip(verdicts, ids, strict=True)
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

"""Runs: creating one, reading them, and the writes to a run's own row (state, plan, spec, head)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlmodel import col, select

from longrun.store import log
from longrun.store.db import Store
from longrun.store.errors import (
    RunNotFound,
)
from longrun.store.models import (
    Run,
    iso,
    utcnow,
)
from longrun.store.runs.views import RunView, _run_view


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
            {
                "name": name,
                "workspace": workspace,
                "branch": branch,
                "spec_path": spec_path,
                "state": state,
                "budget": spec.get("budget"),
            },
            ts=now,
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


@dataclass(frozen=True)
class RunPlan:
    """What the supervisor's tick needs of a run: its state, its spec as stored, and its plan."""

    id: str
    state: str
    spec_json: str
    """The spec's text (callers that validate it keep the result by this text)."""
    due_at: datetime | None
    next_session_at: datetime | None
    next_reason: str | None
    hold_until: datetime | None
    window_ends_at: datetime | None


def _ts_or_none(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def run_plans(store: Store, states: Sequence[str]) -> list[RunPlan]:
    """The runs in `states`, oldest first, read in one statement without the ORM: the supervisor
    reads this every tick, for every run it keeps going."""
    marks = ", ".join("?" for _ in states)
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, state, spec_json, due_at, next_session_at, next_reason, hold_until, "
            f"window_ends_at FROM run WHERE state IN ({marks}) ORDER BY created_at",
            tuple(states),
        ).all()
    return [
        RunPlan(
            r[0], r[1], r[2], _ts_or_none(r[3]), _ts_or_none(r[4]), r[5], _ts_or_none(r[6]), _ts_or_none(r[7])
        )
        for r in rows
    ]


def set_run_state(conn: Connection, run_id: str, state: str, reason: str | None = None) -> None:
    conn.execute(
        text("UPDATE run SET state = :s, state_reason = :r, updated_at = :t WHERE id = :id"),
        {"s": state, "r": reason, "t": iso(utcnow()), "id": run_id},
    )


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


def set_run_spec(conn: Connection, run_id: str, spec: dict[str, Any]) -> None:
    """Replace the run's stored spec (a budget raise); the caller writes the event saying why."""
    conn.execute(
        text("UPDATE run SET spec_json = :spec, updated_at = :t WHERE id = :id"),
        {"spec": log.canonical_json(spec), "t": iso(utcnow()), "id": run_id},
    )


def set_head_checkpoint(conn: Connection, run_id: str, checkpoint_id: int) -> None:
    """Make a checkpoint the run's head (a rewind): the next session and checkpoint go on from it."""
    conn.execute(
        text("UPDATE run SET head_checkpoint_id = :cp, updated_at = :now WHERE id = :id"),
        {"cp": checkpoint_id, "now": iso(utcnow()), "id": run_id},
    )

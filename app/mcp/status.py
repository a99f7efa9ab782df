"""What the read tools hand out, as JSON: a run as the runs screen shows it, and a run's status (the
runs screen's row with the budget, the breakers and each feature, as the Overview shows them).

Everything is read through the store's read functions and `scheduler.control.budget_document`;
this module only shapes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from longrun.scheduler import control
from longrun.store import board, runs
from longrun.store.db import Store
from longrun.store.models import iso


def _at(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def run_row(row: board.RunRow) -> dict[str, Any]:
    """One run as the runs screen shows it: what needs a person, the live session, the next one."""
    return {
        "id": row.id,
        "name": row.name,
        "state": row.state,
        "why": row.state_reason,
        "needs_a_person": row.needs_a_person,
        "features_passing": row.features_passed,
        "features_total": row.features_total,
        "spent_usd": round(row.spent_usd, 6),
        "budget_usd": row.budget_usd,
        "session": (
            {
                "n": row.session.n,
                "started_at": _at(row.session.started_at),
                "deadline_at": iso(row.session.deadline_at),
            }
            if row.session is not None
            else None
        ),
        "next_session": {
            "at": _at(row.next_session_at),
            "why": row.next_reason,
            "held_until": _at(row.hold_until),
        },
        "open_breakers": row.open_breakers,
        "pending_approvals": row.pending,
        "parent_run_id": row.parent_run_id,
        "updated_at": iso(row.updated_at),
    }


def run_list(store: Store) -> list[dict[str, Any]]:
    """Every run, what needs a person first (the runs screen's order)."""
    return [run_row(row) for row in board.run_rows(store)]


def run_status(store: Store, ref: str) -> dict[str, Any]:
    """A run's state and why, its live and next session and why, its budget with what is spent and
    left, its breakers, what waits for a person, and each feature's status at the head."""
    run = runs.get_run(store, ref)
    [row] = board.run_rows(store, [run.id])
    budget = control.budget_document(store, run.id)
    head = runs.get_checkpoint(store, run.head_checkpoint_id) if run.head_checkpoint_id else None
    at_head = head.features if head is not None else {}
    status = run_row(row)
    status.update(
        goal=run.goal,
        workspace=run.workspace,
        branch=run.branch,
        head_checkpoint_id=run.head_checkpoint_id,
        features=[
            {"id": f["id"], "description": f["description"], "status": at_head.get(f["id"], "unjudged")}
            for f in run.spec.get("features", [])
        ],
        budget={
            key: budget[key]
            for key in ("spent_usd", "tokens", "today_usd", "last_hour_usd", "warn_at", "caps")
        },
        breakers=budget["breakers"],
        approvals_waiting=budget["pending_approvals"],
    )
    return status

"""Circuit breakers' states per run (a breaker that never left `closed` has no row)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from longrun.store.db import Store
from longrun.store.models import (
    iso,
    utcnow,
)
from longrun.store.runs.views import BreakerView


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

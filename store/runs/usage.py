"""Spend: a model call's usage added to the run's, the session's and the day's totals, and spend read
back over a window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from longrun.store.db import Store
from longrun.store.models import (
    iso,
    utcnow,
)
from longrun.store.runs.views import TOKEN_KINDS, Usage


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

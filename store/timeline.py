"""A run's time, aggregated in SQL: what the Timeline tab draws and the report charts.

Nothing here loops over the log, or over every checkpoint, in Python. Sessions come from the
session table; the spend and features curves from the checkpoints (each carries the run's totals
and its verdicts when it was made), grouped by stretches of time or kept where verdicts changed;
and markers from the handful of rare event kinds, read through the `(run, kind, ts)` index. The
reads only the report makes (the log's rates, the calls' usage, the people's decisions) are in
`store.audit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, text

from longrun.store.db import Store
from longrun.store.models import iso

MARKER_KINDS = (
    "approval_requested",
    "approval_decided",
    "approval_expired",
    "breaker_tripped",
    "budget_warning",
    "usage_limit_wait",
    "usage_limit_warning",
    "rewound",
    "forked",
    "fork_made",
)
"""Event kinds shown as markers, besides checkpoints and verdict changes (taken from checkpoints)."""

RATCHET = "ratchet"


@dataclass(frozen=True)
class SessionBar:
    id: int
    n: int
    start: datetime
    end: datetime | None
    """None while the session runs."""
    state: str
    end_reason: str | None
    usd: float
    tokens: int


@dataclass(frozen=True)
class Marker:
    ts: datetime
    kind: str
    """An event kind, or `checkpoint`, `verdict_up` (now passes) or `verdict_down` (no longer passes)."""
    label: str
    seq: int | None = None
    """The event's seq in the log, when the marker is one (checkpoints and verdicts have their own)."""
    checkpoint_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    ts: datetime
    value: float


@dataclass(frozen=True)
class Timeline:
    run_id: str
    start: datetime
    end: datetime
    budget_usd: float | None
    features_total: int
    sessions: list[SessionBar]
    markers: list[Marker]
    spend: list[Point]
    """The run's cumulative spend at the last checkpoint of each stretch (`STRETCHES`)."""
    features: list[Point]
    """How many done-condition features passed, at each checkpoint where that changed."""


def time_or_none(value: str | None) -> datetime | None:
    """A stored time, or None for a NULL column."""
    return datetime.fromisoformat(value) if value else None


def time_window(
    since: datetime | None, until: datetime | None, column: str = "ts"
) -> tuple[str, dict[str, str]]:
    """` AND …` clauses for a WHERE that keep the rows whose `column` is from `since` up to (not
    including) `until`, and their parameters; an end that is None is left open."""
    sql, params = "", {}
    if since is not None:
        sql += f" AND {column} >= :since"
        params["since"] = iso(since)
    if until is not None:
        sql += f" AND {column} < :until"
        params["until"] = iso(until)
    return sql, params


STRETCHES = 3000
"""At most about this many points on the spend curve (and checkpoint markers). A run with more
checkpoints than this in the window has them taken by stretches of its time, the last of each
standing for the stretch: a 24-hour run's stretches are 29 s long, finer than a column of the
tab at its closest zoom (1 h)."""


def timeline(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None, now: datetime
) -> Timeline:
    """Everything the Timeline tab draws for a run, between `since` and `until` (the run's whole
    life by default, up to `now`)."""
    with store.reading() as conn:
        run = conn.execute(text("SELECT spec_json, created_at FROM run WHERE id = :id"), {"id": run_id}).one()
        spec = json.loads(run[0])
        features = [f["id"] for f in spec.get("features", [])]
        start = since or datetime.fromisoformat(run[1])
        end = until or now
        window = {"run": run_id, "start": iso(start), "end": iso(end)}
        sessions = _sessions(conn, run_id, start, end)
        stretches = _stretches(conn, window, (end - start).total_seconds() / STRETCHES)
        markers = [
            Marker(
                ts,
                "checkpoint",
                f"checkpoint {cp} (${usd:.2f} spent)" + (f", the last of {n} in {span_s}" if n > 1 else ""),
                checkpoint_id=cp,
                data={"checkpoints": n},
            )
            for cp, ts, usd, n, span_s in stretches
        ]
        markers += _verdict_markers(conn, window, features)
        markers += _event_markers(conn, run_id, since, until)
        passing = _passing(conn, window, features)
    markers.sort(key=attrgetter("ts"))  # stable: within a moment, checkpoints first, then events
    return Timeline(
        run_id=run_id,
        start=start,
        end=end,
        budget_usd=spec.get("budget", {}).get("usd"),
        features_total=len(features),
        sessions=sessions,
        markers=markers,
        spend=[Point(ts, usd) for _, ts, usd, _, _ in stretches],
        features=passing,
    )


def _sessions(conn: Connection, run_id: str, start: datetime, end: datetime) -> list[SessionBar]:
    rows = conn.execute(
        text(
            "SELECT id, n, coalesce(started_at, created_at), ended_at, state, end_reason, spent_usd, "
            "input_tokens + output_tokens + cache_write_tokens + cache_read_tokens FROM session "
            "WHERE run_id = :run AND coalesce(started_at, created_at) < :end "
            "AND (ended_at IS NULL OR ended_at >= :start) ORDER BY n"
        ),
        {"run": run_id, "start": iso(start), "end": iso(end)},
    ).all()
    return [
        SessionBar(r[0], r[1], datetime.fromisoformat(r[2]), time_or_none(r[3]), r[4], r[5], r[6], r[7])
        for r in rows
    ]


CHECKPOINTS_IN_WINDOW = "FROM checkpoint WHERE run_id = :run AND created_at >= :start AND created_at < :end"


def _stretches(
    conn: Connection, window: dict[str, str], seconds: float
) -> list[tuple[int, datetime, float, int, str]]:
    """(the last checkpoint's id, its time, the run's spend then, checkpoints, the stretch's
    length in words) for each stretch of `seconds` that holds a checkpoint; one row per
    checkpoint when there are no more than `STRETCHES` of them."""
    (count,) = conn.execute(text(f"SELECT count(*) {CHECKPOINTS_IN_WINDOW}"), window).one()
    stretch = "CAST((julianday(created_at) - julianday(:start)) * 86400.0 / :step AS INTEGER)"
    rows = conn.execute(
        text(
            # SQLite gives the bare columns of an aggregate query from the row that has the max().
            f"SELECT max(id), created_at, spent_usd, count(*) {CHECKPOINTS_IN_WINDOW} "
            f"GROUP BY {'id' if count <= STRETCHES else stretch} ORDER BY 1"
        ),
        {**window, "step": seconds},
    ).all()
    words = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    return [(r[0], datetime.fromisoformat(r[1]), r[2], r[3], words) for r in rows]


def _verdict_markers(conn: Connection, window: dict[str, str], features: list[str]) -> Iterator[Marker]:
    """A marker for each verdict that changed from a checkpoint's parent to it. SQL keeps only
    the checkpoints whose verdicts' text differs from their parent's: a handful in thousands."""
    rows = conn.execute(
        text(
            "SELECT c.id, c.created_at, c.features_json, p.features_json FROM checkpoint c "
            "LEFT JOIN checkpoint p ON p.id = c.parent_id "
            "WHERE c.run_id = :run AND c.created_at >= :start AND c.created_at < :end "
            "AND c.features_json IS NOT coalesce(p.features_json, '{}') ORDER BY c.id"
        ),
        window,
    ).all()
    for cp, at, now_json, was_json in rows:
        ts, after, before = datetime.fromisoformat(at), json.loads(now_json), json.loads(was_json or "{}")
        for feature in [*features, RATCHET]:
            now, was = after.get(feature), before.get(feature)
            if now is None or now == was:
                continue
            if now == "pass":
                yield Marker(
                    ts, "verdict_up", f"{feature} now passes (was {was or 'unjudged'})", checkpoint_id=cp
                )
            elif was == "pass":
                yield Marker(ts, "verdict_down", f"{feature} no longer passes ({now})", checkpoint_id=cp)


def _passing(conn: Connection, window: dict[str, str], features: list[str]) -> list[Point]:
    """How many features passed, at each checkpoint where that changed. SQL keeps only the
    checkpoints whose verdicts' text differs from the checkpoint's before them in time."""
    rows = conn.execute(
        text(
            "SELECT created_at, features_json FROM ("
            "SELECT created_at, features_json, lag(features_json) OVER (ORDER BY id) AS before "
            f"{CHECKPOINTS_IN_WINDOW}) WHERE before IS NULL OR before != features_json"
        ),
        window,
    ).all()
    points: list[Point] = []
    for at, verdicts in rows:
        statuses = json.loads(verdicts)
        passing = sum(1 for f in features if statuses.get(f) == "pass")
        if not points or points[-1].value != passing:
            points.append(Point(datetime.fromisoformat(at), passing))
    return points


def _event_markers(
    conn: Connection, run_id: str, since: datetime | None, until: datetime | None
) -> list[Marker]:
    marks = ",".join(f":k{i}" for i in range(len(MARKER_KINDS)))
    window, params = time_window(since, until)
    rows = conn.execute(
        text(
            f"SELECT seq, ts, kind, data FROM event WHERE run_id = :run AND kind IN ({marks}){window} "
            "ORDER BY +seq"  # unary +: found through the kind index, then sorted (a few rows)
        ),
        {"run": run_id, **{f"k{i}": k for i, k in enumerate(MARKER_KINDS)}, **params},
    ).all()
    return [
        Marker(
            datetime.fromisoformat(r[1]), r[2], _label(r[2], json.loads(r[3])), r[0], data=json.loads(r[3])
        )
        for r in rows
    ]


def _label(kind: str, data: dict[str, Any]) -> str:
    """A marker's event in a few words."""
    if kind == "approval_requested":
        request = data.get("request") or {}
        what = (request.get("input") or {}).get("command") or request.get("question") or ""
        return f"approval {data.get('approval_id')} asked: {data.get('kind', '')} {what}".strip()
    if kind in ("approval_decided", "approval_expired"):
        said = f"approval {data.get('approval_id')} {data.get('state', 'expired')}"
        if data.get("by"):
            said += f" by {data['by']}"
        return said + (f": {data['comment']}" if data.get("comment") else "")
    if kind == "breaker_tripped":
        return (
            f"breaker {data.get('breaker', data.get('name', '?'))} tripped: {data.get('reason', '')}".rstrip(
                ": "
            )
        )
    if kind == "budget_warning":
        cap, spent, limit = data.get("cap", "?"), data.get("spent", "?"), data.get("limit", "?")
        return f"budget warning: {cap} has {spent} of {limit} spent"
    if kind == "usage_limit_warning":
        used, window = data.get("utilization"), data.get("limit") or "usage"
        if isinstance(used, int | float):
            return f"usage limit nearly reached: {used:.0%} of the {window} window used"
        return f"usage limit nearly reached ({window} window)"
    if kind == "usage_limit_wait":
        return f"usage limit: waiting until {data.get('until', data.get('reset_at', '?'))}"
    if kind == "rewound":
        return f"rewound to checkpoint {data.get('to')} by {data.get('by', '?')}"
    if kind == "forked":
        return f"forked from {data.get('parent_run_id')} checkpoint {data.get('parent_checkpoint_id')}"
    if kind == "fork_made":
        return f"fork {data.get('run_id')} made from checkpoint {data.get('checkpoint_id')}"
    return kind.replace("_", " ")

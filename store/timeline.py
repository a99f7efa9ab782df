"""A run's time, aggregated in SQL: what the Timeline tab draws and the report charts.

Nothing here loops over the log in Python. Sessions come from the session table, the spend and
features curves from the checkpoints (each carries the run's totals and its verdicts when it was
made), and markers from the handful of rare event kinds, read through the `(run, kind, ts)`
index. Only `event_rates` and `token_series` scan the log, with SQL doing the grouping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    """The run's cumulative spend at each checkpoint (and now)."""
    features: list[Point]
    """How many done-condition features passed at each checkpoint."""


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _window(since: datetime | None, until: datetime | None, column: str = "ts") -> tuple[str, dict[str, str]]:
    sql, params = "", {}
    if since is not None:
        sql += f" AND {column} >= :since"
        params["since"] = iso(since)
    if until is not None:
        sql += f" AND {column} < :until"
        params["until"] = iso(until)
    return sql, params


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
        sessions = _sessions(conn, run_id, start, end)
        checkpoints = _checkpoints(conn, run_id, start, end)
        markers = list(_checkpoint_markers(conn, run_id, checkpoints, features))
        markers += _event_markers(conn, run_id, since, until)
    markers.sort(key=lambda m: (m.ts, m.seq or 0))
    spend = [Point(ts, usd) for ts, usd, _ in checkpoints]
    passing = [Point(ts, sum(1 for f in features if feats.get(f) == "pass")) for ts, _, feats in checkpoints]
    return Timeline(
        run_id=run_id,
        start=start,
        end=end,
        budget_usd=spec.get("budget", {}).get("usd"),
        features_total=len(features),
        sessions=sessions,
        markers=markers,
        spend=spend,
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
        SessionBar(r[0], r[1], datetime.fromisoformat(r[2]), _dt(r[3]), r[4], r[5], r[6], r[7]) for r in rows
    ]


def _checkpoints(
    conn: Connection, run_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, float, dict[str, str]]]:
    rows = conn.execute(
        text(
            "SELECT id, parent_id, created_at, spent_usd, features_json FROM checkpoint "
            "WHERE run_id = :run AND created_at >= :start AND created_at < :end ORDER BY id"
        ),
        {"run": run_id, "start": iso(start), "end": iso(end)},
    ).all()
    return [
        (datetime.fromisoformat(r[2]), r[3], json.loads(r[4]) | {"#id": r[0], "#parent": r[1]}) for r in rows
    ]


def _checkpoint_markers(
    conn: Connection,
    run_id: str,
    checkpoints: list[tuple[datetime, float, dict[str, Any]]],
    features: list[str],
) -> Iterator[Marker]:
    """A marker per checkpoint, and one per verdict that changed from its parent checkpoint."""
    known: dict[int, dict[str, Any]] = {feats["#id"]: feats for _, _, feats in checkpoints}
    missing = {
        feats["#parent"] for _, _, feats in checkpoints if feats["#parent"] and feats["#parent"] not in known
    }
    for cp_id in missing:  # parents from before the window
        row = conn.execute(text("SELECT features_json FROM checkpoint WHERE id = :id"), {"id": cp_id}).first()
        known[cp_id] = json.loads(row[0]) if row else {}
    for ts, usd, feats in checkpoints:
        cp = feats["#id"]
        yield Marker(ts, "checkpoint", f"checkpoint {cp} (${usd:.2f} spent)", checkpoint_id=cp)
        before = known.get(feats["#parent"], {}) if feats["#parent"] else {}
        for feature in [*features, RATCHET]:
            now, was = feats.get(feature), before.get(feature)
            if now is None or now == was:
                continue
            if now == "pass":
                yield Marker(
                    ts, "verdict_up", f"{feature} now passes (was {was or 'unjudged'})", checkpoint_id=cp
                )
            elif was == "pass":
                yield Marker(ts, "verdict_down", f"{feature} no longer passes ({now})", checkpoint_id=cp)


def _event_markers(
    conn: Connection, run_id: str, since: datetime | None, until: datetime | None
) -> list[Marker]:
    marks = ",".join(f":k{i}" for i in range(len(MARKER_KINDS)))
    window, params = _window(since, until)
    rows = conn.execute(
        text(
            f"SELECT seq, ts, kind, data FROM event WHERE run_id = :run AND kind IN ({marks}){window} "
            "ORDER BY seq"
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
    if kind == "usage_limit_wait":
        return f"usage limit: waiting until {data.get('until', data.get('reset_at', '?'))}"
    if kind == "rewound":
        return f"rewound to checkpoint {data.get('to')} by {data.get('by', '?')}"
    if kind == "forked":
        return f"forked from {data.get('parent_run_id')} checkpoint {data.get('parent_checkpoint_id')}"
    if kind == "fork_made":
        return f"fork {data.get('run_id')} made from checkpoint {data.get('checkpoint_id')}"
    return kind.replace("_", " ")


# --- scans of the log, grouped in SQL (for the report) ----------------------------------------


def bucket_seconds(start: datetime, end: datetime, buckets: int) -> int:
    return max(1, int((end - start).total_seconds() // max(1, buckets)) + 1)


def event_rates(
    store: Store, run_id: str, start: datetime, end: datetime, buckets: int = 96
) -> tuple[int, list[tuple[int, str, int]]]:
    """(bucket width in seconds, [(bucket index, kind, events)]): the log's rate by kind over time."""
    width = bucket_seconds(start, end, buckets)
    window, params = _window(start, end)
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT CAST((julianday(ts) - julianday(:t0)) * 86400 / :w AS INTEGER) AS b, kind, count(*) "
                f"FROM event WHERE run_id = :run{window} GROUP BY b, kind ORDER BY b"
            ),
            {"run": run_id, "t0": iso(start), "w": width, **params},
        ).all()
    return width, [(r[0], r[1], r[2]) for r in rows]


TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


def token_series(
    store: Store, run_id: str, start: datetime, end: datetime, buckets: int = 96
) -> tuple[int, list[tuple[int, dict[str, int], float]]]:
    """(bucket width in seconds, [(bucket, tokens by kind, USD)]) over the run's model and judge calls."""
    width = bucket_seconds(start, end, buckets)
    window, params = _window(start, end)
    sums = ", ".join(f"sum(coalesce(json_extract(data, '$.usage.{k}'), 0))" for k in TOKEN_KINDS)
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT CAST((julianday(ts) - julianday(:t0)) * 86400 / :w AS INTEGER) AS b, "
                f"{sums}, sum(coalesce(json_extract(data, '$.usage.usd'), 0)) FROM event "
                f"WHERE run_id = :run AND kind IN ('model_call', 'judge_call'){window} GROUP BY b ORDER BY b"
            ),
            {"run": run_id, "t0": iso(start), "w": width, **params},
        ).all()
    return width, [
        (r[0], dict(zip(TOKEN_KINDS, (int(v) for v in r[1:5]), strict=True)), float(r[5])) for r in rows
    ]


def bucket_time(start: datetime, width: int, index: int) -> datetime:
    return start + timedelta(seconds=width * index)

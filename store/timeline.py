"""A run's time, aggregated in SQL: what the Timeline tab draws and the report charts.

Nothing here loops over the log, or over every checkpoint, in Python. Sessions come from the
session table; the spend and features curves from the checkpoints (each carries the run's totals
and its verdicts when it was made), grouped by stretches of time or kept where verdicts changed;
and markers from the handful of rare event kinds, read through the `(run, kind, ts)` index. Only
`event_rates` and `token_series` scan the log, with SQL doing the grouping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
        SessionBar(r[0], r[1], datetime.fromisoformat(r[2]), _dt(r[3]), r[4], r[5], r[6], r[7]) for r in rows
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
    window, params = _window(since, until)
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


ROUND_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def bucket_seconds(start: datetime, end: datetime, buckets: int) -> int:
    """A round bucket width (15 min for a day in 96) giving about `buckets` buckets over the
    window: at most 1% more, so that a window a hair over a day still gets 15 minutes."""
    want = (end - start).total_seconds() / max(1, buckets) / 1.01
    for width in ROUND_SECONDS:
        if width >= want:
            return width
    return math.ceil(want / 86400) * 86400


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


# --- more aggregates for the report -------------------------------------------------------------

CALL_KINDS = ("model_call", "judge_call")
"""The events that carry a usage and its price; their sum is a run's spend."""

PERSON_KINDS = (
    "started",
    "paused",
    "stopped",
    "resumed",
    "budget_set",
    "breaker_reset",
    "features_set",
    "rewound",
    "fork_made",
)
"""Event kinds a person's action writes (each with `by`), besides deciding approvals."""


@dataclass(frozen=True)
class LogSpan:
    """How many events a run's log holds in a window, and the times of the first and the last."""

    events: int
    first: datetime | None
    last: datetime | None


def log_span(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> LogSpan:
    window, params = _window(since, until)
    with store.reading() as conn:
        row = conn.execute(
            text(f"SELECT count(*), min(ts), max(ts) FROM event WHERE run_id = :run{window}"),
            {"run": run_id, **params},
        ).one()
    return LogSpan(int(row[0]), _dt(row[1]), _dt(row[2]))


@dataclass(frozen=True)
class CallUsage:
    """What a set of model and judge calls used: their count, tokens by kind and USD."""

    calls: int
    tokens: dict[str, int]
    usd: float

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


def _usage_sums() -> str:
    sums = ", ".join(f"sum(coalesce(json_extract(data, '$.usage.{k}'), 0))" for k in TOKEN_KINDS)
    return f"count(*), {sums}, sum(coalesce(json_extract(data, '$.usage.usd'), 0))"


def _call_usage(row: Any) -> CallUsage:
    tokens = dict(zip(TOKEN_KINDS, (int(v or 0) for v in row[1:5]), strict=True))
    return CallUsage(int(row[0]), tokens, float(row[5] or 0.0))


def call_usage(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> CallUsage:
    """The run's model and judge calls between `since` and `until`, summed in SQL: the run's
    spend in that window is exactly the sum of these events' costs."""
    window, params = _window(since, until)
    kinds = ", ".join(f"'{k}'" for k in CALL_KINDS)
    with store.reading() as conn:
        row = conn.execute(
            text(f"SELECT {_usage_sums()} FROM event WHERE run_id = :run AND kind IN ({kinds}){window}"),
            {"run": run_id, **params},
        ).one()
    return _call_usage(row)


def session_usage(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> dict[int | None, CallUsage]:
    """The same calls grouped by session (None: calls made outside any session)."""
    window, params = _window(since, until)
    kinds = ", ".join(f"'{k}'" for k in CALL_KINDS)
    with store.reading() as conn:
        rows = conn.execute(
            text(
                f"SELECT session_id, {_usage_sums()} FROM event "
                f"WHERE run_id = :run AND kind IN ({kinds}){window} GROUP BY session_id"
            ),
            {"run": run_id, **params},
        ).all()
    return {r[0]: _call_usage(r[1:]) for r in rows}


def features_at(store: Store, run_id: str, until: datetime | None = None) -> dict[str, str]:
    """Each feature's status at the run's head checkpoint, or, given `until`, at the last
    checkpoint made before it (empty when there is none)."""
    with store.reading() as conn:
        if until is None:
            row = conn.execute(
                text(
                    "SELECT c.features_json FROM run r JOIN checkpoint c ON c.id = r.head_checkpoint_id "
                    "WHERE r.id = :run"
                ),
                {"run": run_id},
            ).first()
        else:
            row = conn.execute(
                text(
                    "SELECT features_json FROM checkpoint WHERE run_id = :run AND created_at < :until "
                    "ORDER BY created_at DESC, id DESC LIMIT 1"
                ),
                {"run": run_id, "until": iso(until)},
            ).first()
    return json.loads(row[0]) if row else {}


@dataclass(frozen=True)
class ApprovalCounts:
    asked: int
    """Requested in the window."""
    decided: int
    """Decided by a person in the window (approved, denied or answered)."""
    expired: int
    pending: int
    """Asked in the window and not decided by its end."""


def approval_counts(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> ApprovalCounts:
    asked, asked_params = _window(since, until, "requested_at")
    decided, decided_params = _window(since, until, "decided_at")
    open_at_end = "decided_at IS NULL" + (" OR decided_at >= :until" if until is not None else "")
    with store.reading() as conn:
        row = conn.execute(
            text(
                f"SELECT sum(CASE WHEN 1=1{asked} THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN state IN ('approved', 'denied', 'answered'){decided} THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN state = 'expired'{decided} THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN 1=1{asked} AND ({open_at_end}) THEN 1 ELSE 0 END) "
                "FROM approval WHERE run_id = :run"
            ),
            {"run": run_id, **asked_params, **decided_params},
        ).one()
    return ApprovalCounts(*(int(v or 0) for v in row))


@dataclass(frozen=True)
class Decision:
    """A person's decision: an approval decided, or an action such as a pause, a rewind or a new budget."""

    ts: datetime
    by: str
    kind: str
    """The approval's kind (`tool_call`, `question`, `budget_raise`, …) or the action's event kind."""
    what: str
    comment: str | None
    approval_id: int | None = None


def decisions(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Decision]:
    """The people's decisions in the window, oldest first: approvals decided (from the approval
    table, with what was asked) and the actions in `PERSON_KINDS` (read through the kind index)."""
    decided, decided_params = _window(since, until, "decided_at")
    window, params = _window(since, until)
    marks = ",".join(f":k{i}" for i in range(len(PERSON_KINDS)))
    with store.reading() as conn:
        approvals = conn.execute(
            text(
                "SELECT id, kind, state, request_json, decided_by, decided_at, comment FROM approval "
                f"WHERE run_id = :run AND decided_by IS NOT NULL{decided}"
            ),
            {"run": run_id, **decided_params},
        ).all()
        actions = conn.execute(
            text(f"SELECT ts, kind, data FROM event WHERE run_id = :run AND kind IN ({marks}){window}"),
            {"run": run_id, **{f"k{i}": k for i, k in enumerate(PERSON_KINDS)}, **params},
        ).all()
    out = [
        Decision(
            datetime.fromisoformat(r[5]),
            r[4],
            r[1],
            _approval_words(r[0], r[1], r[2], json.loads(r[3])),
            r[6],
            r[0],
        )
        for r in approvals
    ]
    # A breaker reset that decides a pending breaker_reset approval is told once, by the approval.
    resets = {(d.by, d.ts.replace(microsecond=0)) for d in out if d.kind == "breaker_reset"}
    for ts_text, kind, data_text in actions:
        ts, data = datetime.fromisoformat(ts_text), json.loads(data_text)
        if kind == "breaker_reset" and (data.get("by"), ts.replace(microsecond=0)) in resets:
            continue
        if kind == "features_set" and data.get("approval_id"):
            continue
        out.append(
            Decision(ts, str(data.get("by") or "?"), kind, _action_words(kind, data), data.get("comment"))
        )
    out.sort(key=lambda d: d.ts)
    return out


def _approval_words(approval_id: int, kind: str, state: str, request: dict[str, Any]) -> str:
    detail = (
        (request.get("input") or {}).get("command")
        or request.get("question")
        or request.get("breaker")
        or (request.get("input") or {}).get("file_path")
        or ""
    )
    said = f"{state} {kind.replace('_', ' ')} (approval {approval_id})"
    return f"{said}: {detail}" if detail else said


def _action_words(kind: str, data: dict[str, Any]) -> str:
    if kind in ("started", "paused", "stopped"):
        return f"{kind} the run"
    if kind == "resumed":
        at = data.get("checkpoint_id")
        return "resumed the run" + (f" from checkpoint {at}" if at else "")
    if kind == "budget_set":
        return f"set the budget: {data.get('from')} → {data.get('to')}"
    if kind == "breaker_reset":
        return f"reset breaker {data.get('breaker')}"
    if kind == "features_set":
        return f"set the done-condition ({len(data.get('features') or [])} features)"
    if kind == "rewound":
        return f"rewound to checkpoint {data.get('to')} (from {data.get('from')})"
    if kind == "fork_made":
        return f"forked run {data.get('run_id')} from checkpoint {data.get('checkpoint_id')}"
    return kind.replace("_", " ")

"""The reads of a run that only the audit report (`longrun report`) makes, aggregated in SQL.

Beside what `store.timeline` gives the Timeline tab and the report alike, the report needs: the
log's span; the window's activity (`activity`: its event rates by kind, and its calls' token use
and spend, over buckets of time and by session, all from one scan of the window with SQL doing
the grouping); the spend before a window; each feature's status at a time; the approvals asked
and decided; and the people's decisions. SQL does the grouping and the sums; Python only shapes
the few rows that come back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from longrun.store.db import Store
from longrun.store.models import iso
from longrun.store.timeline import time_or_none, time_window

# --- buckets of time ------------------------------------------------------------------------------


ROUND_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def bucket_seconds(start: datetime, end: datetime, buckets: int) -> int:
    """A round bucket width (15 min for a day in 96) giving about `buckets` buckets over the
    window: at most 1% more, so that a window a hair over a day still gets 15 minutes."""
    want = (end - start).total_seconds() / max(1, buckets) / 1.01
    for width in ROUND_SECONDS:
        if width >= want:
            return width
    return math.ceil(want / 86400) * 86400


def bucket_time(start: datetime, width: int, index: int) -> datetime:
    return start + timedelta(seconds=width * index)


# --- sums and lists over a window ---------------------------------------------------------------

CALL_KINDS = ("model_call", "judge_call")
"""The events that carry a usage and its price; their sum is a run's spend."""

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")

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

_CALLS = "kind IN (" + ", ".join(f"'{k}'" for k in CALL_KINDS) + ")"


@dataclass(frozen=True)
class LogSpan:
    """How many events a run's log holds in a window, and the times of the first and the last."""

    events: int
    first: datetime | None
    last: datetime | None


def log_span(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> LogSpan:
    window, params = time_window(since, until)
    with store.reading() as conn:
        row = conn.execute(
            text(f"SELECT count(*), min(ts), max(ts) FROM event WHERE run_id = :run{window}"),
            {"run": run_id, **params},
        ).one()
    return LogSpan(int(row[0]), time_or_none(row[1]), time_or_none(row[2]))


@dataclass(frozen=True)
class CallUsage:
    """What a set of model and judge calls used: their count, tokens by kind and USD."""

    calls: int
    tokens: dict[str, int]
    usd: float

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


def _usage_sums(usage: str) -> str:
    """count(*) and the sums of the usages' tokens by kind and of their USD, `usage` being the
    usage's JSON. Each payload's usage is taken out of it once, in a subquery that LIMIT keeps a
    co-routine (SQLite would otherwise put the extraction in every sum: a payload parsed five
    times instead of once), and the sums read the small usage."""
    sums = ", ".join(f"sum(coalesce(json_extract({usage}, '$.{k}'), 0))" for k in TOKEN_KINDS)
    return f"count(*), {sums}, sum(coalesce(json_extract({usage}, '$.usd'), 0))"


def _call_usage(row: Any) -> CallUsage:
    tokens = dict(zip(TOKEN_KINDS, (int(v or 0) for v in row[1:5]), strict=True))
    return CallUsage(int(row[0]), tokens, float(row[5] or 0.0))


def call_usage(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> CallUsage:
    """The run's model and judge calls between `since` and `until`, summed in SQL: the run's
    spend in that window is exactly the sum of these events' costs."""
    window, params = time_window(since, until)
    with store.reading() as conn:
        row = conn.execute(
            text(
                f"SELECT {_usage_sums('u')} FROM (SELECT json_extract(data, '$.usage') AS u "
                f"FROM event WHERE run_id = :run AND {_CALLS}{window} LIMIT -1)"
            ),
            {"run": run_id, **params},
        ).one()
    return _call_usage(row)


@dataclass(frozen=True)
class Activity:
    """A window's events read in one pass: the log's rate by kind over time, and the usage of
    its model and judge calls over time and by session."""

    width: int
    """The buckets' width in seconds (`bucket_seconds`)."""
    rates: list[tuple[int, str, int]]
    """(bucket, kind, events), by bucket."""
    tokens: list[tuple[int, dict[str, int], float]]
    """(bucket, tokens by kind, USD) of the calls, for the buckets that have some, by bucket."""
    sessions: dict[int | None, CallUsage]
    """The calls' usage by session (None: calls made outside any session)."""


def activity(store: Store, run_id: str, start: datetime, end: datetime, buckets: int = 96) -> Activity:
    """The window's events counted by bucket and kind, and its calls' usage summed by bucket and
    by session, from one scan of the window grouped in SQL by bucket, kind and (for the calls)
    session; Python adds up the few hundred groups."""
    width = bucket_seconds(start, end, buckets)
    window, params = time_window(start, end)
    with store.reading() as conn:
        rows = conn.execute(
            text(
                f"SELECT b, kind, s, {_usage_sums('u')} FROM ("
                "SELECT CAST((julianday(ts) - julianday(:t0)) * 86400 / :w AS INTEGER) AS b, kind, "
                f"CASE WHEN {_CALLS} THEN session_id END AS s, "
                f"CASE WHEN {_CALLS} THEN json_extract(data, '$.usage') END AS u "
                # The (run, kind, ts) index holds all that an event other than a call needs, so
                # only the calls' rows are read (SQLite would take the (run, seq) index instead).
                f"FROM event INDEXED BY ix_event_run_kind_ts WHERE run_id = :run{window} LIMIT -1"
                ") GROUP BY b, kind, s"
            ),
            {"run": run_id, "t0": iso(start), "w": width, **params},
        ).all()
    rates: dict[tuple[int, str], int] = {}
    by_bucket: dict[int, list[Any]] = {}
    by_session: dict[int | None, list[Any]] = {}
    for b, kind, session, count, *usage in rows:
        rates[b, kind] = rates.get((b, kind), 0) + count
        if kind in CALL_KINDS:
            by_bucket.setdefault(b, []).append(usage)
            by_session.setdefault(session, []).append([count, *usage])
    return Activity(
        width=width,
        rates=[(b, kind, n) for (b, kind), n in sorted(rates.items())],
        tokens=[(b, *_added(parts)) for b, parts in sorted(by_bucket.items())],
        sessions={session: _summed(parts) for session, parts in by_session.items()},
    )


def _added(parts: list[Any]) -> tuple[dict[str, int], float]:
    """Tokens by kind and USD, added up over groups' sums (tokens by kind…, USD)."""
    tokens = {k: int(sum(p[i] for p in parts)) for i, k in enumerate(TOKEN_KINDS)}
    return tokens, math.fsum(p[-1] for p in parts)


def _summed(parts: list[Any]) -> CallUsage:
    """A usage, added up over groups' sums (calls, tokens by kind…, USD)."""
    tokens, usd = _added([p[1:] for p in parts])
    return CallUsage(sum(p[0] for p in parts), tokens, usd)


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
    asked, asked_params = time_window(since, until, "requested_at")
    decided, decided_params = time_window(since, until, "decided_at")
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
    decided, decided_params = time_window(since, until, "decided_at")
    window, params = time_window(since, until)
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


@dataclass(frozen=True)
class Confinement:
    """How the sessions that started in a window were confined (their `sandbox` events)."""

    confined: int
    unconfined: int
    why: list[str]
    """Why each distinct unconfined session was (`[sandbox] mode = "off"`, a worker not sandboxed)."""


def confinement(
    store: Store, run_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> Confinement:
    window, params = time_window(since, until)
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT json_extract(data, '$.confined'), json_extract(data, '$.why') FROM event "
                f"WHERE run_id = :run AND kind = 'sandbox'{window}"
            ),
            {"run": run_id, **params},
        ).all()
    unconfined = [str(why or "no sandbox") for ok, why in rows if not ok]
    return Confinement(len(rows) - len(unconfined), len(unconfined), sorted(set(unconfined)))

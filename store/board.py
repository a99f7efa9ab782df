"""What the dashboard reads: one row per run for the runs screen, what changed since the last poll,
and windows of a run's log.

Every read here is bounded: a handful of grouped queries for the runs list whatever the number
of runs, and windows of the log found through the `(run_id, seq)` index, so a store with a
million events reads as fast as one with a hundred.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from longrun.store.db import Store
from longrun.store.log import EventView
from longrun.store.models import FINAL_SESSION_STATES, iso

NEEDS_A_PERSON = ("awaiting_approval", "tripped", "failed")
"""States a person has to act on; their runs sort first."""

STATE_ORDER = {
    "awaiting_approval": 0,
    "tripped": 1,
    "failed": 2,
    "running": 3,
    "scheduled": 4,
    "paused": 5,
    "draft": 6,
    "stopped": 7,
    "done": 8,
    "archived": 9,
}


@dataclass(frozen=True)
class LiveSession:
    n: int
    started_at: datetime | None
    deadline_at: datetime


@dataclass(frozen=True)
class RunRow:
    """A run as the runs screen shows it."""

    id: str
    name: str
    state: str
    state_reason: str | None
    features_passed: int
    features_total: int
    spent_usd: float
    budget_usd: float | None
    session: LiveSession | None
    next_session_at: datetime | None
    next_reason: str | None
    hold_until: datetime | None
    open_breakers: list[str]
    pending: int
    created_at: datetime
    updated_at: datetime
    parent_run_id: str | None = None

    @property
    def needs_a_person(self) -> bool:
        return self.pending > 0 or bool(self.open_breakers) or self.state in NEEDS_A_PERSON

    def sort_key(self) -> tuple[int, int, str]:
        """What needs a person first, then live work, then the rest; newest first within each."""
        urgency = 0 if self.needs_a_person else 1
        return (urgency, STATE_ORDER.get(self.state, 10), _descending(self.created_at))


def _descending(at: datetime) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in iso(at))


@dataclass(frozen=True)
class Changes:
    """What changed in the store since a cursor, and the cursor to ask with next time."""

    rows: list[RunRow]
    cursor: Cursor
    everything: bool = False
    """True on the first read: `rows` is every run, not just the changed ones."""


@dataclass(frozen=True)
class Cursor:
    event_id: int = 0
    updated_at: str = ""
    runs: int = 0


_RUNS = """
SELECT r.id, r.name, r.state, r.state_reason, r.spec_json, r.spent_usd, r.next_session_at, r.next_reason,
       r.hold_until, r.created_at, r.updated_at, r.parent_run_id, c.features_json
FROM run r LEFT JOIN checkpoint c ON c.id = r.head_checkpoint_id
"""


def run_rows(store: Store, run_ids: list[str] | None = None) -> list[RunRow]:
    """The runs screen's rows (all runs, or just `run_ids`), sorted with what needs a person first."""
    with store.reading() as conn:
        return _rows(conn, run_ids)


def _rows(conn: Connection, run_ids: list[str] | None) -> list[RunRow]:
    where, params = "", {}
    if run_ids is not None:
        if not run_ids:
            return []
        where = " WHERE r.id IN (" + ",".join(f":r{i}" for i in range(len(run_ids))) + ")"
        params = {f"r{i}": rid for i, rid in enumerate(run_ids)}
    runs = conn.execute(text(_RUNS + where), params).all()
    pending: dict[str, int] = dict(
        conn.execute(
            text("SELECT run_id, count(*) FROM approval WHERE state = 'pending' GROUP BY run_id")
        ).all()
    )
    breakers: dict[str, list[str]] = {}
    for run_id, name in conn.execute(text("SELECT run_id, name FROM breaker WHERE state = 'open'")):
        breakers.setdefault(run_id, []).append(name)
    final = ",".join(f"'{s}'" for s in FINAL_SESSION_STATES)
    live: dict[str, LiveSession] = {}
    for run_id, n, started, deadline in conn.execute(
        text(f"SELECT run_id, n, started_at, deadline_at FROM session WHERE state NOT IN ({final})")
    ):
        live[run_id] = LiveSession(n, _dt(started), datetime.fromisoformat(deadline))
    rows = []
    for r in runs:
        spec = json.loads(r[4])
        ids = [f["id"] for f in spec.get("features", [])]
        features = json.loads(r[12]) if r[12] else {}
        rows.append(
            RunRow(
                id=r[0],
                name=r[1],
                state=r[2],
                state_reason=r[3],
                features_passed=sum(1 for f in ids if features.get(f) == "pass"),
                features_total=len(ids),
                spent_usd=r[5],
                budget_usd=spec.get("budget", {}).get("usd"),
                session=live.get(r[0]),
                next_session_at=_dt(r[6]),
                next_reason=r[7],
                hold_until=_dt(r[8]),
                open_breakers=sorted(breakers.get(r[0], [])),
                pending=pending.get(r[0], 0),
                created_at=datetime.fromisoformat(r[9]),
                updated_at=datetime.fromisoformat(r[10]),
                parent_run_id=r[11],
            )
        )
    return sorted(rows, key=RunRow.sort_key)


def changes(store: Store, since: Cursor | None) -> Changes:
    """The runs that changed since `since` (an event written, or the run row updated), read whole;
    every run when `since` is None. Sessions ending or approvals decided always write an event."""
    with store.reading() as conn:
        top = conn.execute(text("SELECT coalesce(max(id), 0) FROM event")).scalar_one()
        newest = conn.execute(text("SELECT coalesce(max(updated_at), '') FROM run")).scalar_one()
        count = conn.execute(text("SELECT count(*) FROM run")).scalar_one()
        cursor = Cursor(top, newest, count)
        if since is None:
            return Changes(_rows(conn, None), cursor, everything=True)
        if cursor == since:
            return Changes([], cursor)
        ids = {
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT run_id FROM event WHERE id > :id"), {"id": since.event_id}
            )
        }
        ids |= {
            r[0]
            for r in conn.execute(
                text("SELECT id FROM run WHERE updated_at >= :at"), {"at": since.updated_at}
            )
        }
        if count != since.runs:
            ids |= {r[0] for r in conn.execute(text("SELECT id FROM run"))}
        return Changes(_rows(conn, sorted(ids)), cursor)


# --- the log, in windows ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which events the Events tab shows: kinds, one session, and text found in kind or data."""

    kinds: tuple[str, ...] = ()
    session_n: int | None = None
    text: str = ""

    @property
    def empty(self) -> bool:
        return not (self.kinds or self.session_n is not None or self.text)


@dataclass(frozen=True)
class EventWindow:
    events: list[EventView]
    has_older: bool
    has_newer: bool
    last_seq: int
    """The run's newest seq when read (whether or not it passed the filter)."""


@dataclass(frozen=True)
class _Where:
    sql: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def _where(f: EventFilter, session_id: int | None) -> _Where:
    parts: list[str] = []
    params: dict[str, Any] = {}
    if f.kinds:
        parts.append("kind IN (" + ",".join(f":k{i}" for i in range(len(f.kinds))) + ")")
        params.update({f"k{i}": k for i, k in enumerate(f.kinds)})
    if f.session_n is not None:
        parts.append("session_id = :sid")
        params["sid"] = session_id if session_id is not None else -1
    if f.text:
        parts.append("(kind LIKE :q ESCAPE '\\' OR data LIKE :q ESCAPE '\\')")
        escaped = f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["q"] = f"%{escaped}%"
    return _Where("".join(f" AND {p}" for p in parts), params)


def _session_id(conn: Connection, run_id: str, n: int | None) -> int | None:
    if n is None:
        return None
    row = conn.execute(text("SELECT id FROM session WHERE run_id = :run AND n = :n"), {"run": run_id, "n": n})
    found = row.first()
    return found[0] if found else None


def _events(rows: Any) -> list[EventView]:
    return [EventView(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], json.loads(r[5])) for r in rows]


_COLS = "SELECT run_id, seq, session_id, ts, kind, data FROM event WHERE run_id = :run"


def event_window(
    store: Store,
    run_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 200,
    where: EventFilter | None = None,
) -> EventWindow:
    """Up to `limit` matching events: the newest ones, those just before seq `before`, or those
    just after seq `after`; always oldest first."""
    f = where or EventFilter()
    with store.reading() as conn:
        w = _where(f, _session_id(conn, run_id, f.session_n))
        params = {"run": run_id, "limit": limit + 1} | w.params
        last = conn.execute(text("SELECT coalesce(max(seq), 0) FROM event WHERE run_id = :run"), params)
        last_seq = last.scalar_one()
        if after is not None:
            sql = f"{_COLS} AND seq > :after{w.sql} ORDER BY seq LIMIT :limit"
            rows = conn.execute(text(sql), params | {"after": after}).all()
            newer = len(rows) > limit
            events = _events(rows[:limit])
            older = after > 0 and _exists(conn, run_id, w, "seq <= :at", after)
            return EventWindow(events, older, newer, last_seq)
        bound = " AND seq < :before" if before is not None else ""
        sql = f"{_COLS}{bound}{w.sql} ORDER BY seq DESC LIMIT :limit"
        rows = conn.execute(text(sql), params | {"before": before}).all()
        older = len(rows) > limit
        events = _events(reversed(rows[:limit]))
        newer = before is not None and _exists(conn, run_id, w, "seq >= :at", before)
        return EventWindow(events, older, newer, last_seq)


def _exists(conn: Connection, run_id: str, w: _Where, bound: str, at: int) -> bool:
    sql = f"SELECT 1 FROM event WHERE run_id = :run AND {bound}{w.sql} LIMIT 1"
    return conn.execute(text(sql), {"run": run_id, "at": at} | w.params).first() is not None


def seq_at(store: Store, run_id: str, at: datetime) -> int:
    """The seq of the run's first event at or after `at` (its last seq + 1 when none is).

    A binary search over seq, since a run's events are written in time order: about twenty
    reads through the primary index, whatever the size of the log."""
    moment = iso(at)
    with store.reading() as conn:
        last = conn.execute(
            text("SELECT coalesce(max(seq), 0) FROM event WHERE run_id = :run"), {"run": run_id}
        ).scalar_one()
        lo, hi = 1, last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            ts = conn.execute(
                text("SELECT ts FROM event WHERE run_id = :run AND seq = :seq"), {"run": run_id, "seq": mid}
            ).scalar()
            if ts is not None and ts < moment:
                lo = mid + 1
            else:
                hi = mid
        return lo


def event_count(store: Store, run_id: str) -> int:
    """How many events the run has (its newest seq: seqs have no gaps)."""
    with store.reading() as conn:
        return conn.execute(
            text("SELECT coalesce(max(seq), 0) FROM event WHERE run_id = :run"), {"run": run_id}
        ).scalar_one()


def events_of_kinds(store: Store, run_id: str, kinds: list[str], limit: int = 200) -> list[EventView]:
    """The run's newest events of these kinds (through the kind index), oldest first."""
    marks = ",".join(f":k{i}" for i in range(len(kinds)))
    params = {"run": run_id, "limit": limit} | {f"k{i}": k for i, k in enumerate(kinds)}
    with store.reading() as conn:
        rows = conn.execute(
            # `+seq`: through the kind index, not a walk of the whole log in seq order.
            text(f"{_COLS} AND kind IN ({marks}) ORDER BY +seq DESC LIMIT :limit"),
            params,
        ).all()
    return list(reversed(_events(rows)))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None

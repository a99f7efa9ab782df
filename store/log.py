"""The append-only event log and its hash chain.

This is the hot path: plain SQLAlchemy Core on one connection, no ORM objects. Each event's
hash covers its run, seq, time, session, kind and payload text plus the previous event's hash,
so editing or dropping any row behind the triggers' back breaks the chain from there on. Every
append also moves the run's head (`chain_head`: the count and the last hash) in the same
transaction, and leaves the head to be anchored outside the database once the transaction has
committed (`store.anchors`), so that a log cut short is found too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from longrun.store import anchors
from longrun.store.db import Store
from longrun.store.models import iso, utcnow

GENESIS = "0" * 64

_HEAD = text("SELECT seq, hash FROM event WHERE run_id = :run ORDER BY seq DESC LIMIT 1")
# The hot path's statements go to the driver's connection (inside the caller's transaction):
# SQLAlchemy's statement handling would cost more than the head's own row.
_RAW_HEAD = "SELECT seq, hash FROM event WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
_RAW_INSERT = (
    "INSERT INTO event (run_id, seq, session_id, ts, kind, data, prev_hash, hash) "
    "VALUES (:run_id, :seq, :session_id, :ts, :kind, :data, :prev_hash, :hash)"
)
_RAW_MOVE_HEAD = (
    "INSERT INTO chain_head (run_id, events, hash, exact_from) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET events = excluded.events, hash = excluded.hash"
)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def text_digest(text_: str | None) -> str | None:
    """The SHA-256 of a stored text (None for None): what an event records of a payload it does not copy."""
    return None if text_ is None else hashlib.sha256(text_.encode()).hexdigest()


def event_hash(
    prev_hash: str, run_id: str, seq: int, ts: str, session_id: int | None, kind: str, data: str
) -> str:
    material = "\x1f".join(
        (prev_hash, run_id, str(seq), ts, "" if session_id is None else str(session_id), kind, data)
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class EventView:
    run_id: str
    seq: int
    session_id: int | None
    ts: datetime
    kind: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "session_id": self.session_id,
            "ts": iso(self.ts),
            "kind": self.kind,
            "data": self.data,
        }


def append(
    conn: Connection,
    run_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    session_id: int | None = None,
    ts: datetime | None = None,
) -> int:
    """Append one event inside the caller's write transaction and return its seq."""
    return append_many(conn, run_id, [(kind, data or {}, session_id, ts)])


def append_many(
    conn: Connection,
    run_id: str,
    items: Sequence[tuple[str, dict[str, Any], int | None, datetime | None]],
) -> int:
    """Append events (kind, data, session_id, ts) in order inside the caller's write transaction.

    Returns the seq of the last one. The caller's transaction must be a write transaction
    (`Store.writing`), which holds the write lock, so two processes can never take the same seq.
    """
    last = append_raw(_driver(conn), run_id, items)
    if last is None:
        return head_seq(conn, run_id)
    conn.info.setdefault(anchors.PENDING, {})[run_id] = last
    return last[0]


def append_raw(
    raw: Any, run_id: str, items: Sequence[tuple[str, dict[str, Any], int | None, datetime | None]]
) -> tuple[int, str] | None:
    """The statements of an append, on a driver's connection inside its write transaction: the
    head looked up, the rows chained and inserted, the head moved. Returns the new head (None
    when there was nothing to append)."""
    head = raw.execute(_RAW_HEAD, (run_id,)).fetchone()
    seq, prev = (head[0], head[1]) if head else (0, GENESIS)
    rows = chain_rows(run_id, seq, prev, items)
    if not rows:
        return None
    if len(rows) == 1:
        raw.execute(_RAW_INSERT, rows[0])
    else:
        raw.executemany(_RAW_INSERT, rows)
    last = rows[-1]
    raw.execute(_RAW_MOVE_HEAD, (run_id, last["seq"], last["hash"], rows[0]["seq"]))
    return int(last["seq"]), str(last["hash"])


def chain_rows(
    run_id: str,
    last_seq: int,
    last_hash: str,
    items: Sequence[tuple[str, dict[str, Any], int | None, datetime | None]],
) -> list[dict[str, Any]]:
    """Event rows (kind, data, session_id, ts) chained after the event `last_seq` with `last_hash`."""
    rows = []
    seq, prev = last_seq, last_hash
    for kind, data, session_id, ts in items:
        seq += 1
        stamp = iso(ts or utcnow())
        payload = canonical_json(data)
        digest = event_hash(prev, run_id, seq, stamp, session_id, kind, payload)
        rows.append(
            {
                "run_id": run_id,
                "seq": seq,
                "session_id": session_id,
                "ts": stamp,
                "kind": kind,
                "data": payload,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows


def record(
    store: Store,
    run_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    session_id: int | None = None,
) -> int:
    """Append one event in a transaction of its own (committed before this returns), on the
    store's hot connection (`Store.hot`): SQLAlchemy's connection and transaction would cost
    more than the event's own statements."""
    with store.hot() as (raw, heads):
        last = append_raw(raw, run_id, [(kind, data or {}, session_id, None)])
        assert last is not None, "one event was given"
        heads[run_id] = last
    return last[0]


def head_seq(conn: Connection, run_id: str) -> int:
    row = conn.execute(_HEAD, {"run": run_id}).first()
    return row[0] if row else 0


def read_events(
    store: Store,
    run_id: str,
    *,
    since: int = 0,
    limit: int | None = None,
    kinds: list[str] | None = None,
) -> list[EventView]:
    """Events of a run with seq greater than `since`, oldest first."""
    sql = "SELECT run_id, seq, session_id, ts, kind, data FROM event WHERE run_id = :run AND seq > :since"
    params: dict[str, Any] = {"run": run_id, "since": since}
    if kinds:
        sql += " AND kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")"
        params.update({f"k{i}": k for i, k in enumerate(kinds)})
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    with store.reading() as conn:
        rows = conn.execute(text(sql), params).all()
    return [EventView(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], json.loads(r[5])) for r in rows]


@dataclass(frozen=True)
class EventRow:
    """An event as stored: its time as the store's text and its payload as the canonical JSON
    its hash was computed over (for exports, which need not parse it)."""

    run_id: str
    seq: int
    session_id: int | None
    ts: str
    kind: str
    data: str


def stream_rows(
    store: Store,
    run_id: str,
    *,
    since_seq: int = 0,
    until_seq: int | None = None,
    since_ts: datetime | None = None,
    until_ts: datetime | None = None,
    kinds: list[str] | None = None,
    batch: int = 2000,
) -> Iterator[EventRow]:
    """A run's events oldest first, read `batch` at a time by seq, each batch in a read of its
    own, so memory stays the same however long the log is.

    The window: seq after `since_seq` and up to `until_seq` (by default the run's last event when
    the stream starts, so events appended meanwhile are left out), time from `since_ts` (inclusive)
    to `until_ts` (exclusive).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    where = "run_id = :run AND seq > :last AND seq <= :until"
    params: dict[str, Any] = {"run": run_id, "batch": batch}
    if since_ts is not None:
        where += " AND ts >= :since_ts"
        params["since_ts"] = iso(since_ts)
    if until_ts is not None:
        where += " AND ts < :until_ts"
        params["until_ts"] = iso(until_ts)
    if kinds:
        # `+kind` keeps SQLite on the (run_id, seq) index: the kind index would sort every batch.
        where += " AND +kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")"
        params.update({f"k{i}": k for i, k in enumerate(kinds)})
    sql = text(
        f"SELECT run_id, seq, session_id, ts, kind, data FROM event WHERE {where} ORDER BY seq LIMIT :batch"
    )
    if until_seq is None:
        with store.reading() as conn:
            until_seq = head_seq(conn, run_id)
    last = since_seq
    while last < until_seq:
        with store.reading() as conn:
            rows = conn.execute(sql, params | {"last": last, "until": until_seq}).all()
        for row in rows:
            yield EventRow(row[0], row[1], row[2], row[3], row[4], row[5])
        if len(rows) < batch:
            return
        last = rows[-1][1]


def stream_events(
    store: Store,
    run_id: str,
    *,
    since_seq: int = 0,
    until_seq: int | None = None,
    since_ts: datetime | None = None,
    until_ts: datetime | None = None,
    kinds: list[str] | None = None,
    batch: int = 2000,
) -> Iterator[EventView]:
    """`stream_rows` as read models (times and payloads parsed)."""
    for r in stream_rows(
        store,
        run_id,
        since_seq=since_seq,
        until_seq=until_seq,
        since_ts=since_ts,
        until_ts=until_ts,
        kinds=kinds,
        batch=batch,
    ):
        yield EventView(
            r.run_id, r.seq, r.session_id, datetime.fromisoformat(r.ts), r.kind, json.loads(r.data)
        )


@dataclass(frozen=True)
class ChainReport:
    run_id: str
    events: int
    ok: bool
    broken_at: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "events": self.events,
            "ok": self.ok,
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


Observer = Callable[[int, int | None, str, str, str], None]
"""Called with (seq, session_id, ts, kind, data text) for every event of a chain walk, in seq order."""


def verify_chain(
    store: Store, run_id: str, observe: Observer | None = None, *, conn: Connection | None = None
) -> ChainReport:
    """Walk the run's events in seq order, recomputing every hash; report the first break.

    With `observe`, the walk goes on to the last event after a break, showing each event to it
    (the whole-store audit reads the rows' records on the same pass). With `conn`, the walk reads
    in the caller's read transaction (one snapshot with the caller's other reads); without, each
    page is a read of its own."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    broken: ChainReport | None = None
    for page in _chain_pages(store, run_id, conn):
        for seq, session_id, ts, kind, data, prev_hash, digest in page:
            count += 1
            if observe is not None:
                observe(seq, session_id, ts, kind, data)
            if broken is not None:
                continue
            if seq != expected_seq:
                broken = ChainReport(run_id, count, False, expected_seq, f"event {expected_seq} is missing")
            elif prev_hash != prev:
                broken = ChainReport(
                    run_id, count, False, seq, "its link to the previous event does not match"
                )
            elif event_hash(prev, run_id, seq, ts, session_id, kind, data) != digest:
                broken = ChainReport(run_id, count, False, seq, "its content does not match its hash")
            if broken is not None:
                if observe is None:
                    return broken
                continue
            prev = digest
            expected_seq += 1
    if broken is not None:
        return ChainReport(run_id, count, False, broken.broken_at, broken.reason)
    return ChainReport(run_id, count, True)


def record_heads(store: Store, run_ids: list[str] | None = None) -> dict[str, tuple[int, str]]:
    """Take each run's head from its log as it stands, keep it and anchor it: for writers that
    fill the event table around `append` (bulk loaders), once they are done. Returns the heads."""
    where = "" if run_ids is None else " WHERE run_id IN (" + ",".join("?" * len(run_ids)) + ")"
    with store.writing() as conn:
        raw = _driver(conn)
        heads = {
            r[0]: (int(r[1]), r[2])
            for r in raw.execute(
                "SELECT e.run_id, e.seq, e.hash FROM (SELECT run_id, max(seq) AS seq FROM event"
                f"{where} GROUP BY run_id) h JOIN event e ON e.run_id = h.run_id AND e.seq = h.seq",
                tuple(run_ids or ()),
            ).fetchall()
        }
        raw.executemany(_RAW_MOVE_HEAD, [(r, n, h, n + 1) for r, (n, h) in heads.items()])
        conn.info.setdefault(anchors.PENDING, {}).update(heads)
    return heads


CHAIN_PAGE = 5000


def _chain_pages(
    store: Store, run_id: str, conn: Connection | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """The chain's rows in pages, so verifying a million events stays in constant memory (plain
    tuples from the driver: a million rows wrapped by SQLAlchemy cost a second)."""
    sql = (
        "SELECT seq, session_id, ts, kind, data, prev_hash, hash FROM event "
        "WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    )
    last = 0
    while True:
        if conn is not None:
            page = _driver(conn).execute(sql, (run_id, last, CHAIN_PAGE)).fetchall()
        else:
            with store.reading() as own:
                page = _driver(own).execute(sql, (run_id, last, CHAIN_PAGE)).fetchall()
        if not page:
            return
        yield page
        last = page[-1][0]


def _driver(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    assert raw is not None, "a connection in a transaction has its driver's connection"
    return raw


def latest_event(store: Store, run_id: str, kind: str) -> EventView | None:
    """The newest event of one kind in a run, or None (an indexed look-up)."""
    sql = (
        "SELECT run_id, seq, session_id, ts, kind, data FROM event "
        "WHERE run_id = :run AND kind = :kind ORDER BY ts DESC, seq DESC LIMIT 1"
    )
    with store.reading() as conn:
        r = conn.execute(text(sql), {"run": run_id, "kind": kind}).first()
    if r is None:
        return None
    return EventView(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], json.loads(r[5]))

"""`append`: how fast the store's hot path writes events, against plain sqlite3 on the same disk.

The longrun side is `log.record`, one event per committed transaction, exactly as a session
writes its events (head lookup, canonical JSON, hash chain, SQLAlchemy Core, BEGIN IMMEDIATE).
The baseline is the sqlite3 module inserting the same rows, already hashed, into a table of the
same shape (the longrun store's own DDL) with the same durability: WAL, synchronous=FULL, one
committed transaction per row. A second pair compares batches of 100 (`append_many` in one
write transaction against `executemany` in one transaction). The two sides run in interleaved
rounds, the order swapped every round, so disk noise and cache warmth favour neither.

Layout under `--dir`: `longrun/longrun.db` (runs `bench-append` and `bench-append-batched`)
and `sqlite3/bench.db` (the same two run rows and their events).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    Benchmark,
    bench_spec,
    chunks,
    new_run_id,
    positive_int,
    progress,
    sample_event,
    versions,
    work_dir,
)
from longrun.store import log, runs
from longrun.store.db import BUSY_TIMEOUT_MS, Store

LONGRUN_DIR = "longrun"
SQLITE_DIR = "sqlite3"
SQLITE_DB = "bench.db"
SINGLE_RUN = "bench-append"
BATCHED_RUN = "bench-append-batched"
BATCH = 100
ROUNDS = 10
DURABILITY = "WAL, synchronous=FULL, one transaction per event"
TARGET_RATIO = 0.7
"""One event at a time, longrun's path at least this share of plain sqlite3's rate."""

_INSERT = (
    "INSERT INTO event (run_id, seq, session_id, ts, kind, data, prev_hash, hash) "
    "VALUES (:run_id, :seq, :session_id, :ts, :kind, :data, :prev_hash, :hash)"
)

Row = dict[str, Any]


@dataclass
class Side:
    """Time spent and events written by one side of a comparison, summed over its rounds."""

    seconds: float = 0.0
    events: int = 0

    def timed(self, write: Callable[[range], int], part: range) -> None:
        started = time.perf_counter()
        written = write(part)
        self.seconds += time.perf_counter() - started
        self.events += written

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Pair:
    longrun: Side = field(default_factory=Side)
    sqlite3: Side = field(default_factory=Side)

    def to_json(self) -> dict[str, Any]:
        ratio = self.longrun.per_s / self.sqlite3.per_s if self.sqlite3.per_s else 0.0
        return {
            "longrun_events_per_s": round(self.longrun.per_s, 1),
            "sqlite3_events_per_s": round(self.sqlite3.per_s, 1),
            "ratio": round(ratio, 3),
        }


def _new_run(store: Store, name: str) -> tuple[str, int]:
    """A run and a session of it to write events into, the way a session finds them."""
    home = store.home
    run_id = new_run_id()
    runs.insert_run(
        store,
        run_id=run_id,
        name=name,
        goal="benchmark the event log",
        spec=bench_spec(name, home),
        spec_path=None,
        workspace=str(home / f"workspace-{name}"),
        branch=f"longrun/{run_id}",
        state="running",
    )
    session = runs.create_session(store, run_id, time_box=timedelta(hours=5), wrap_up=timedelta(minutes=10))
    return run_id, session.id


def _open_sqlite(path: Path, store: Store, run_ids: list[str]) -> sqlite3.Connection:
    """A plain sqlite3 database with the store's own run and event DDL, the run rows copied over.

    Same pragmas as `make_engine`; the sqlite3 module's default transaction handling (an implicit
    BEGIN before the INSERT, COMMIT on leaving `with conn`) is the plain baseline.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=FULL")
    with store.engine.connect() as source:
        ddl = source.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('run', 'event') AND sql IS NOT NULL "
            "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, tbl_name = 'event'"
        ).all()
        marks = ",".join("?" * len(run_ids))
        run_rows = source.exec_driver_sql(f"SELECT * FROM run WHERE id IN ({marks})", tuple(run_ids)).all()
    with conn:
        for (sql,) in ddl:
            conn.execute(sql)
        for row in run_rows:
            conn.execute(f"INSERT INTO run VALUES ({','.join('?' * len(row))})", tuple(row))
    return conn


def _baseline_rows(run_id: str, session_id: int, count: int) -> list[Row]:
    """The rows the baseline inserts: the same payloads, serialised and hash-chained beforehand."""
    items = [(*sample_event(i), session_id, None) for i in range(count)]
    return log.chain_rows(run_id, 0, log.GENESIS, items)


def measure(root: Path, events: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """Write `events` events per side, one per transaction and then in batches, into `root`."""
    store = Store.open(root / LONGRUN_DIR)
    try:
        single = _new_run(store, SINGLE_RUN)
        batched = _new_run(store, BATCHED_RUN)
        conn = _open_sqlite(root / SQLITE_DIR / SQLITE_DB, store, [single[0], batched[0]])
        try:
            one_by_one, in_batches = _compare(store, conn, single, batched, events, rounds)
        finally:
            conn.close()
    finally:
        store.close()
    single_figures = one_by_one.to_json()
    met = {"ratio": single_figures["ratio"] >= TARGET_RATIO}
    return {
        "benchmark": "append",
        "events": events,
        "durability": DURABILITY,
        **single_figures,
        "batched": {"batch": BATCH, **in_batches.to_json()},
        "rounds": rounds,
        "targets": {"ratio": TARGET_RATIO},
        "met": met,
        "meets_targets": all(met.values()),
        **versions(),
    }


def _compare(
    store: Store,
    conn: sqlite3.Connection,
    single: tuple[str, int],
    batched: tuple[str, int],
    events: int,
    rounds: int,
) -> tuple[Pair, Pair]:
    """Both comparisons in interleaved rounds; `single` and `batched` are (run id, session id)."""
    payloads = [sample_event(i) for i in range(events)]
    single_rows = _baseline_rows(*single, events)
    batched_rows = _baseline_rows(*batched, events)

    def longrun_single(part: range) -> int:
        for i in part:
            kind, data = payloads[i]
            log.record(store, single[0], kind, data, session_id=single[1])
        return len(part)

    def sqlite_single(part: range) -> int:
        for i in part:
            with conn:
                conn.execute(_INSERT, single_rows[i])
        return len(part)

    def longrun_batched(part: range) -> int:
        for start in range(part.start, part.stop, BATCH):
            items = [(k, d, batched[1], None) for k, d in payloads[start : min(start + BATCH, part.stop)]]
            with store.writing() as wconn:
                log.append_many(wconn, batched[0], items)
        return len(part)

    def sqlite_batched(part: range) -> int:
        for start in range(part.start, part.stop, BATCH):
            with conn:
                conn.executemany(_INSERT, batched_rows[start : min(start + BATCH, part.stop)])
        return len(part)

    one_by_one, in_batches = Pair(), Pair()
    for k, part in enumerate(chunks(events, rounds)):
        order = [(one_by_one.longrun, longrun_single), (one_by_one.sqlite3, sqlite_single)]
        for side, write in order if k % 2 == 0 else order[::-1]:
            side.timed(write, part)
        progress(f"append round {k + 1}/{rounds}: {one_by_one.longrun.events}/{events} events per side")
    # Batched rounds are cut at multiples of BATCH, so every transaction but the last holds BATCH.
    batch_parts = [
        range(r.start * BATCH, min(r.stop * BATCH, events)) for r in chunks(-(-events // BATCH), rounds)
    ]
    for k, part in enumerate(batch_parts):
        order = [(in_batches.longrun, longrun_batched), (in_batches.sqlite3, sqlite_batched)]
        for side, write in order if k % 2 == 0 else order[::-1]:
            side.timed(write, part)
    progress(f"append batched: {in_batches.longrun.events} events per side in batches of {BATCH}")
    return one_by_one, in_batches


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=positive_int, default=20_000, help="events per side (default 20000)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the databases here and keep them (default: a temp dir, removed)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=ROUNDS,
        help=f"interleaved rounds per comparison (default {ROUNDS})",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    with work_dir(args.dir, [LONGRUN_DIR, SQLITE_DIR]) as root:
        return measure(root, args.events, args.rounds)


BENCHMARK = Benchmark(
    name="append",
    help="event-append throughput of the store's hot path against plain sqlite3",
    configure=configure,
    run=run,
)

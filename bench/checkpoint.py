"""`checkpoint`: the store's checkpoint write against LangGraph's `SqliteSaver`, step for step.

What each side does per step, in the same process, on the same disk, with the same durability
(WAL, `synchronous=FULL`, set on both connections: every commit is on disk before the call
returns), in interleaved rounds whose order turns every round:

- longrun: the store's part of `take_checkpoint`: `runs.head_commit` (the read it makes before
  the git snapshot, to list the commits since the parent) and `runs.add_checkpoint` (one write
  transaction: the checkpoint row, the run's head, the checkpoint event on the hash chain, the
  chain head; the head anchored outside the database after the commit). The git snapshot, the
  mirror push and the commit listing are not measured: they write no store and LangGraph has no
  counterpart. The step's payload is the checkpoint's handoff, and one workspace commit is listed.
- LangGraph: what one superstep of a one-node graph writes through its checkpointer
  (`PregelLoop.put_writes`, then `_put_checkpoint`): `SqliteSaver.put_writes` with the node's
  write, then `SqliteSaver.put` with the new checkpoint; two committed transactions, as the
  loop makes them. The channel's reducer and `create_checkpoint` are the loop's, not timed.

The payload is the same Python dict on both sides, a handoff whose canonical JSON is exactly
200 B or 2 KB; each side serialises it its own way (canonical JSON; msgpack). LangGraph's graph
state comes in two shapes: `langgraph` keeps the steps in a list channel (`messages`, what
`MessagesState` and most agent graphs do), so each checkpoint holds every payload so far, the
full snapshot the targets are set against; `langgraph_last_value` keeps only the latest one
(a `LastValue` channel), reported beside it with no target, as the smallest thing LangGraph
could store.

Store size after the steps: pages in use (page_count x page_size, the file's size once the WAL
is checkpointed) plus, for longrun, its anchor file; `bytes_added` leaves out what was there
before the first step (longrun's schema, the run and its session; LangGraph's two tables).

Targets: per payload, longrun's median step at most 0.5x LangGraph's, and its store at most
0.5x LangGraph's. Reading the time ratio: a step is one commit here and two there, so where the
disk's flush dominates it is 0.5 plus the difference in Python and SQLite work per step; run
with `--dir` on a tmpfs to see that work alone. Without `langgraph-checkpoint-sqlite` (the
`bench` extra) only longrun's side is measured and the result says why.

Layout under `--dir`: `longrun-<bytes>/` (a store), `langgraph-<bytes>.db` and
`langgraph-last-value-<bytes>.db`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    BenchError,
    Benchmark,
    bench_spec,
    chunks,
    median,
    new_run_id,
    p95,
    positive_int,
    progress,
    ratio,
    versions,
    work_dir,
)
from longrun.store import anchors, log, runs
from longrun.store.db import Store

STEPS = 200
ROUNDS = 10
PAYLOADS = (200, 2000)
TARGET_TIME_RATIO = 0.5
TARGET_SIZE_RATIO = 0.5
DURABILITY = "WAL, synchronous=FULL, each commit durable before the call returns"
MEASURED = {
    "longrun": "runs.head_commit + runs.add_checkpoint: one read, one write transaction (1 commit)",
    "langgraph": "SqliteSaver.put_writes + SqliteSaver.put: two write transactions (2 commits)",
}
RUN_NAME = "bench-checkpoint"
THREAD_ID = "bench-checkpoint"


def longrun_dir(size: int) -> str:
    return f"longrun-{size}"


def langgraph_db(size: int, accumulate: bool) -> str:
    return f"langgraph-{size}.db" if accumulate else f"langgraph-last-value-{size}.db"


def handoff(step: int, size: int) -> dict[str, Any]:
    """A handoff whose canonical JSON is exactly `size` bytes, different at every step."""
    note = {"blockers": [], "done": [f"step {step}"], "next": [f"step {step + 1}"], "notes": ""}
    pad = size - len(log.canonical_json(note).encode())
    if pad < 0:
        raise BenchError(f"a payload of {size} B is too small for a handoff (at least {size - pad} B)")
    words = f"step {step} kept the tests green and moved on to the next feature; "
    note["notes"] = (words * (pad // len(words) + 1))[:pad]
    return note


@dataclass
class Side:
    """One side's step times (ms) and its store's size before and after the steps."""

    times: list[float] = field(default_factory=list)
    before: int = 0
    after: int = 0

    def timed(self, step: Callable[[int], None], n: int) -> None:
        started = time.perf_counter()
        step(n)
        self.times.append((time.perf_counter() - started) * 1000)

    def to_json(self) -> dict[str, Any]:
        return {
            "median_ms": round(median(self.times), 4),
            "mean_ms": round(sum(self.times) / len(self.times), 4),
            "p95_ms": round(p95(self.times), 4),
            "bytes": self.after,
            "bytes_added": self.after - self.before,
        }


def _pages(conn: sqlite3.Connection) -> int:
    """The bytes a database holds: its pages, the WAL's included (what the file is once checkpointed)."""
    count = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(count) * int(size)


class LongrunSide:
    """A store with one run and one session, checkpointed the way a session's harness does."""

    def __init__(self, home: Path) -> None:
        self.store = Store.open(home)
        self.run_id = new_run_id()
        runs.insert_run(
            self.store,
            run_id=self.run_id,
            name=RUN_NAME,
            goal="benchmark the checkpoint write",
            spec=bench_spec(RUN_NAME, home),
            spec_path=None,
            workspace=str(home / f"workspace-{RUN_NAME}"),
            branch=f"longrun/{self.run_id}",
            state="running",
        )
        self.session_id = runs.create_session(
            self.store, self.run_id, time_box=timedelta(hours=5), wrap_up=timedelta(minutes=10)
        ).id

    def step(self, n: int, payload: dict[str, Any]) -> None:
        runs.head_commit(self.store, self.run_id)
        commit = f"{n + 1:040x}"
        runs.add_checkpoint(
            self.store,
            run_id=self.run_id,
            session_id=self.session_id,
            commit=commit,
            reason="handoff",
            handoff=payload,
            commits=[{"sha": f"{n:040x}", "subject": f"Step {n}: keep the tests green"}],
        )

    def bytes(self) -> int:
        with self.store.reading() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            pages = _pages(raw)
        anchor = anchors.anchor_path(self.store.home, self.run_id)
        return pages + (anchor.stat().st_size if anchor.exists() else 0)

    def close(self) -> None:
        self.store.close()


class LangGraphSide:
    """A LangGraph thread written as a one-node graph's loop writes it, one superstep per step."""

    def __init__(self, path: Path, accumulate: bool) -> None:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.accumulate = accumulate
        self.channel = "messages" if accumulate else "handoff"
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()  # journal_mode=WAL, as SqliteSaver sets it
        self.conn.execute("PRAGMA synchronous=FULL")
        self.checkpoint = empty_checkpoint()
        self.values: list[dict[str, Any]] = []
        self.pending: tuple[Any, ...] = ()

    def prepare(self, n: int, payload: dict[str, Any]) -> None:
        """The loop's own work before the writes (the reducer, the next checkpoint): not timed."""
        from langgraph.checkpoint.base import create_checkpoint

        previous = self.checkpoint["channel_versions"].get(self.channel)
        version = self.saver.get_next_version(previous if isinstance(previous, str) else None, None)
        if self.accumulate:
            self.values = [*self.values, payload]
        value: Any = self.values if self.accumulate else payload
        write: Any = [payload] if self.accumulate else payload
        nxt = create_checkpoint(self.checkpoint, None, n)
        nxt["channel_values"] = {self.channel: value}
        nxt["channel_versions"] = {self.channel: version}
        nxt["versions_seen"] = {"agent": {self.channel: previous}} if previous else {}
        nxt["updated_channels"] = [self.channel]
        config = {
            "configurable": {
                "thread_id": THREAD_ID,
                "checkpoint_ns": "",
                "checkpoint_id": self.checkpoint["id"],
            }
        }
        metadata = {"source": "loop", "step": n, "parents": {}}
        self.pending = (config, write, f"task-{n}", nxt, metadata, {self.channel: version})

    def step(self, _n: int) -> None:
        config, write, task_id, nxt, metadata, versions_ = self.pending
        self.saver.put_writes(config, [(self.channel, write)], task_id)
        self.saver.put(config, nxt, metadata, versions_)
        self.checkpoint = nxt

    def bytes(self) -> int:
        return _pages(self.conn)

    def close(self) -> None:
        self.conn.close()


def langgraph_version() -> dict[str, Any]:
    """Whether `langgraph-checkpoint-sqlite` can be imported, its version, and why not when not."""
    try:
        import langgraph.checkpoint.sqlite  # noqa: F401
    except ImportError as exc:
        return {
            "installed": False,
            "version": None,
            "reason": f"langgraph-checkpoint-sqlite is not installed ({exc}); "
            'pip install -e ".[bench]" to compare against it',
        }
    return {
        "installed": True,
        "version": importlib.metadata.version("langgraph-checkpoint-sqlite"),
        "reason": None,
    }


def measure_payload(root: Path, size: int, steps: int, rounds: int, with_langgraph: bool) -> dict[str, Any]:
    """`steps` checkpoints of one payload size on every side, in interleaved rounds."""
    payloads = [handoff(n, size) for n in range(steps)]
    ours = LongrunSide(root / longrun_dir(size))
    theirs = (
        {
            key: LangGraphSide(root / langgraph_db(size, acc), acc)
            for key, acc in (("langgraph", True), ("langgraph_last_value", False))
        }
        if with_langgraph
        else {}
    )
    sides: dict[str, Side] = {"longrun": Side(), **{key: Side() for key in theirs}}
    try:
        sides["longrun"].before = ours.bytes()
        for key, lg in theirs.items():
            sides[key].before = lg.bytes()
        for k, part in enumerate(chunks(steps, rounds)):
            order = list(sides)
            shift = k % len(order)
            for key in order[shift:] + order[:shift]:
                for n in part:
                    if key == "longrun":
                        sides[key].timed(lambda i: ours.step(i, payloads[i]), n)
                    else:
                        theirs[key].prepare(n, payloads[n])
                        sides[key].timed(theirs[key].step, n)
        sides["longrun"].after = ours.bytes()
        for key, lg in theirs.items():
            sides[key].after = lg.bytes()
    finally:
        ours.close()
        for lg in theirs.values():
            lg.close()
    out: dict[str, Any] = {"payload_bytes": size, **{key: side.to_json() for key, side in sides.items()}}
    if not theirs:
        out |= {
            "langgraph": None,
            "langgraph_last_value": None,
            "time_ratio": None,
            "size_ratio": None,
            "last_value_time_ratio": None,
            "last_value_size_ratio": None,
            "met": None,
        }
        return out
    mine = out["longrun"]
    for key, prefix in (("langgraph", ""), ("langgraph_last_value", "last_value_")):
        out[f"{prefix}time_ratio"] = ratio(mine["median_ms"], out[key]["median_ms"])
        out[f"{prefix}size_ratio"] = ratio(mine["bytes"], out[key]["bytes"])
    out["met"] = {
        "time_ratio": out["time_ratio"] <= TARGET_TIME_RATIO,
        "size_ratio": out["size_ratio"] <= TARGET_SIZE_RATIO,
    }
    return out


def measure(root: Path, steps: int, rounds: int) -> dict[str, Any]:
    lg = langgraph_version()
    results = []
    for size in PAYLOADS:
        progress(
            f"checkpoint: {steps} steps of {size} B on each side"
            + ("" if lg["installed"] else " (longrun only)")
        )
        results.append(measure_payload(root, size, steps, rounds, lg["installed"]))
    met = [all(r["met"].values()) for r in results if r["met"] is not None]
    return {
        "benchmark": "checkpoint",
        "steps": steps,
        "rounds": rounds,
        "durability": DURABILITY,
        "measured": MEASURED,
        "langgraph": lg,
        "payloads": results,
        "targets": {"time_ratio": TARGET_TIME_RATIO, "size_ratio": TARGET_SIZE_RATIO},
        "meets_targets": all(met) if met else None,
        **versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=STEPS,
        help=f"checkpoints per side and payload (default {STEPS})",
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the stores here and keep them (default: a temp dir, removed)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = [longrun_dir(s) for s in PAYLOADS]
    with work_dir(args.dir, parts) as root:
        for db in (root / langgraph_db(size, acc) for size in PAYLOADS for acc in (True, False)):
            if db.exists():
                raise BenchError(f"{db}: already there (give --dir a new or empty directory)")
        return measure(root, args.steps, args.rounds)


BENCHMARK = Benchmark(
    name="checkpoint",
    help="the store's checkpoint write against LangGraph's SqliteSaver: time per step and store size",
    configure=configure,
    run=run,
)

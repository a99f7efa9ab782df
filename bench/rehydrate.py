"""`rehydrate`: the cost of building a resume context, for a short history and a very long one.

Two runs of the same shape are filled in one store: sessions of six checkpoints, a checkpoint
every `CHECKPOINT_EVERY` events (the last of each session with a handoff), verdicts for every
feature at every checkpoint, and typical model/tool events in between. Then the context of each
run's latest checkpoint is built (`load_resume_inputs` + `build_resume_context`, what a new
session does) `repeat` times after one warm-up, the two runs taking turns. The contract is that
this cost does not grow with the log, so `ratio` (large median / small median) should stay near 1.

Filling goes around the one-event-at-a-time path on purpose: `append_many` in transactions of
`FILL_TRANSACTION` events, with checkpoint, verdict and session rows inserted directly in the
same transactions, so a million events take seconds, not hours. The run and the session the
context is built for are made through `runs.insert_run` and `runs.create_session`, as for real.

Layout under `--dir`: `store/longrun.db`, holding runs `bench-small` and `bench-large`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Insert, insert, text

from longrun.bench.common import (
    BenchError,
    Benchmark,
    bench_spec,
    median,
    new_run_id,
    p95,
    positive_int,
    progress,
    sample_event,
    versions,
    work_dir,
)
from longrun.scheduler.session.context import build_resume_context, load_resume_inputs
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import Checkpoint, RunSession, RunState, SessionState, Verdict, iso, utcnow

STORE_DIR = "store"
SMALL_RUN = "bench-small"
LARGE_RUN = "bench-large"
CHECKPOINT_EVERY = 300
CHECKPOINTS_PER_SESSION = 6
FILL_TRANSACTION = 50_000
COMMITS_PER_CHECKPOINT = 12
EVENT_SPACING = timedelta(seconds=2)
TIME_BOX = timedelta(hours=5)
WRAP_UP = timedelta(minutes=10)

Item = tuple[str, dict[str, Any], int | None, datetime | None]


@dataclass(frozen=True)
class Plan:
    """How a run's `events` are spread: checkpoints, sessions, and work events per checkpoint."""

    events: int
    features: int
    checkpoints: int
    sessions: int
    filler: int

    @classmethod
    def of(cls, events: int, features: int) -> Plan:
        checkpoints = max(1, events // CHECKPOINT_EVERY)
        sessions = math.ceil(checkpoints / CHECKPOINTS_PER_SESSION)
        return cls(
            events, features, checkpoints, sessions, events - cls.structural(checkpoints, sessions, features)
        )

    @staticmethod
    def structural(checkpoints: int, sessions: int, features: int) -> int:
        """Events that are not work: run_created and the measured session's session_created;
        per session created, started, handoff and ended; per checkpoint its own and its verdicts."""
        return 2 + 4 * sessions + checkpoints * (1 + features)

    @classmethod
    def minimum(cls, features: int) -> int:
        return cls.structural(1, 1, features) + 1

    def work_before(self, checkpoint: int) -> int:
        """Work events before checkpoint number `checkpoint` (0-based), spread evenly."""
        size, extra = divmod(self.filler, self.checkpoints)
        return size + (1 if checkpoint < extra else 0)


class HistoryWriter:
    """Writes one run's history straight into the store, keeping the hash chain and totals right."""

    def __init__(self, store: Store, run_id: str, spec: dict[str, Any], plan: Plan, start: datetime) -> None:
        self.store = store
        self.run_id = run_id
        self.features = spec["features"]
        self.plan = plan
        self.clock = start
        self.seq = 1  # run_created, written by insert_run
        self.work = 0
        self.head: int | None = None
        self.session_id: int | None = None
        self.session_n = 0
        self.spent = 0.0
        self.tokens = {k: 0 for k in runs.TOKEN_KINDS}
        self.session_spent = 0.0
        self.session_tokens = {k: 0 for k in runs.TOKEN_KINDS}
        self.verdicts = 0

    def fill(self, label: str) -> None:
        """Write every session and checkpoint of the plan, in transactions of about FILL_TRANSACTION."""
        started = time.perf_counter()
        checkpoint = 0
        while checkpoint < self.plan.checkpoints:
            items: list[Item] = []
            with self.store.writing() as conn:
                while checkpoint < self.plan.checkpoints and len(items) < FILL_TRANSACTION:
                    items.extend(self._checkpoint_block(conn, checkpoint))
                    checkpoint += 1
                last = log.append_many(conn, self.run_id, items)
                if last != self.seq:
                    raise RuntimeError(f"seq went out of step while filling ({last} != {self.seq})")
                self._set_run_totals(conn)
            progress(
                f"rehydrate {label}: {self.seq:,}/{self.plan.events:,} events, "
                f"{checkpoint}/{self.plan.checkpoints} checkpoints ({time.perf_counter() - started:.1f} s)"
            )

    def _event(self, kind: str, data: dict[str, Any], session_id: int | None) -> Item:
        self.seq += 1
        self.clock += EVENT_SPACING
        return (kind, data, session_id, self.clock)

    def _checkpoint_block(self, conn: Connection, index: int) -> list[Item]:
        """The events up to and including checkpoint `index` and its verdicts (and the session's
        start and end when it opens or closes one)."""
        items: list[Item] = []
        first_of_session = index % CHECKPOINTS_PER_SESSION == 0
        last_of_session = index % CHECKPOINTS_PER_SESSION == CHECKPOINTS_PER_SESSION - 1
        last_of_session = last_of_session or index == self.plan.checkpoints - 1
        if first_of_session:
            items.extend(self._start_session(conn))
        sid = self.session_id
        for _ in range(self.plan.work_before(index)):
            kind, data = sample_event(self.work)
            self.work += 1
            if kind == "model_call":
                self._add_usage(data["usage"])
            items.append(self._event(kind, data, sid))
        handoff = self._handoff() if last_of_session else None
        if handoff is not None:
            items.append(self._event("handoff", handoff, sid))
        statuses = self._statuses(index)
        commit = _sha(f"{self.run_id}:{index}")
        reason = "handoff" if handoff is not None else "calls"
        cp_id = _inserted_id(
            conn,
            insert(Checkpoint).values(
                run_id=self.run_id,
                session_id=sid,
                parent_id=self.head,
                seq=self.seq + 1,  # the seq of its own event, appended next
                commit=commit,
                reason=reason,
                handoff_json=log.canonical_json(handoff) if handoff is not None else None,
                features_json=log.canonical_json(statuses),
                commits_json=log.canonical_json(_commits(self.run_id, index)),
                spent_usd=self.spent,
                tokens=sum(self.tokens.values()),
                created_at=self.clock + EVENT_SPACING,
            ),
        )
        items.append(
            self._event(
                "checkpoint",
                {"checkpoint_id": cp_id, "commit": commit, "reason": reason, "parent_id": self.head},
                sid,
            )
        )
        self.head = cp_id
        items.extend(self._verdicts(conn, cp_id, statuses))
        if last_of_session:
            items.append(self._end_session(conn))
        return items

    def _start_session(self, conn: Connection) -> list[Item]:
        self.session_n += 1
        created = self.clock + EVENT_SPACING
        deadline = created + TIME_BOX
        self.session_id = _inserted_id(
            conn,
            insert(RunSession).values(
                run_id=self.run_id,
                n=self.session_n,
                state=SessionState.ended,
                pid=40_000 + self.session_n,
                created_at=created,
                started_at=created,
                deadline_at=deadline,
                wrap_up_at=deadline - WRAP_UP,
                heartbeat_at=created,
                from_checkpoint_id=self.head,
            ),
        )
        self.session_spent = 0.0
        self.session_tokens = {k: 0 for k in runs.TOKEN_KINDS}
        return [
            self._event(
                "session_created",
                {
                    "n": self.session_n,
                    "deadline_at": iso(deadline),
                    "wrap_up_at": iso(deadline - WRAP_UP),
                    "from_checkpoint_id": self.head,
                },
                self.session_id,
            ),
            self._event(
                "session_started", {"n": self.session_n, "pid": 40_000 + self.session_n}, self.session_id
            ),
        ]

    def _end_session(self, conn: Connection) -> Item:
        item = self._event(
            "session_ended", {"n": self.session_n, "state": "ended", "reason": "handoff"}, self.session_id
        )
        totals = ", ".join(f"{k} = :{k}" for k in runs.TOKEN_KINDS)
        conn.execute(
            text(
                f"UPDATE session SET ended_at = :t, heartbeat_at = :t, end_reason = 'handoff', "
                f"spent_usd = :usd, {totals} WHERE id = :id"
            ),
            {"t": iso(self.clock), "usd": self.session_spent, "id": self.session_id} | self.session_tokens,
        )
        return item

    def _add_usage(self, usage: dict[str, Any]) -> None:
        self.spent += usage["usd"]
        self.session_spent += usage["usd"]
        for k in runs.TOKEN_KINDS:
            self.tokens[k] += usage[k]
            self.session_tokens[k] += usage[k]

    def _statuses(self, index: int) -> dict[str, str]:
        """Features pass one after another as the run goes on; the last one keeps failing, so the
        latest checkpoint of every run has the same shape (all but one passing, one with evidence)."""
        progress_done = (index + 1) / self.plan.checkpoints
        last = len(self.features) - 1
        return {
            f["id"]: "pass" if j < last and progress_done >= (j + 1) / len(self.features) else "fail"
            for j, f in enumerate(self.features)
        }

    def _verdicts(self, conn: Connection, cp_id: int, statuses: dict[str, str]) -> list[Item]:
        rows, items = [], []
        for f in self.features:
            judge = "command" if f.get("check") else "llm"
            status = statuses[f["id"]]
            evidence = _evidence(judge, status)
            rows.append(
                {
                    "run_id": self.run_id,
                    "checkpoint_id": cp_id,
                    "feature_id": f["id"],
                    "judge": judge,
                    "status": status,
                    "evidence_json": log.canonical_json(evidence),
                    "created_at": self.clock,
                }
            )
            items.append(
                self._event(
                    "verdict",
                    {
                        "checkpoint_id": cp_id,
                        "feature_id": f["id"],
                        "judge": judge,
                        "status": status,
                        "evidence": evidence,
                    },
                    None,
                )
            )
        conn.execute(insert(Verdict), rows)
        self.verdicts += len(rows)
        return items

    @staticmethod
    def _handoff() -> dict[str, Any]:
        return {
            "done": [
                "top_words strips punctuation and its tests pass",
                "README documents word_count and top_words with examples",
            ],
            "next": ["make reading_time handle the empty text", "document reading_time in the README"],
            "blockers": ["the rubric judge wants a runnable README example for reading_time"],
            "notes": "Run tests/test_reading_time.py first; the empty-text case divides by zero. "
            "The README example for reading_time is still missing.",
        }

    def _set_run_totals(self, conn: Connection) -> None:
        conn.execute(
            text(
                "UPDATE run SET head_checkpoint_id = :head, spent_usd = :usd, "
                + ", ".join(f"{k} = :{k}" for k in runs.TOKEN_KINDS)
                + " WHERE id = :id"
            ),
            {"head": self.head, "usd": self.spent, "id": self.run_id} | self.tokens,
        )


def _inserted_id(conn: Connection, statement: Insert) -> int:
    """The primary key of the one row `statement` inserted."""
    key = conn.execute(statement).inserted_primary_key
    if key is None or key[0] is None:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])


def _sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def _commits(run_id: str, index: int) -> list[dict[str, str]]:
    """The commits a checkpoint records since its parent: enough to fill the context's commit list
    on their own, so a run with one checkpoint and a run with thousands show the same shape."""
    return [
        {"sha": _sha(f"{run_id}:{index}:{k}"), "subject": _SUBJECTS[k % len(_SUBJECTS)]}
        for k in range(COMMITS_PER_CHECKPOINT)
    ]


_SUBJECTS = (
    "Strip punctuation in top_words",
    "Handle the empty text in reading_time",
    "Add a README example for word_count",
    "Test top_words ties are alphabetical",
)


def _evidence(judge: str, status: str) -> dict[str, Any]:
    if judge == "llm":
        return {
            "rationale": "The README has no runnable example for reading_time; the other two "
            "functions are documented."
            if status == "fail"
            else "All three functions are documented with runnable examples."
        }
    if status == "pass":
        return {"exit_code": 0, "output_tail": "4 passed in 0.11s"}
    return {
        "exit_code": 1,
        "output_tail": "F...\nFAILED tests/test_reading_time.py::test_empty - "
        "ZeroDivisionError: division by zero\n1 failed, 3 passed in 0.12s",
    }


@dataclass
class Subject:
    """One filled run and the session whose resume context is timed."""

    label: str
    plan: Plan
    run: runs.RunView
    session: runs.SessionView
    verdicts: int
    times_ms: list[float]
    context: str = ""

    def build(self, store: Store) -> float:
        started = time.perf_counter()
        inputs = load_resume_inputs(store, self.run, self.session, self.run.head_checkpoint_id)
        self.context = build_resume_context(inputs)
        return (time.perf_counter() - started) * 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.plan.events,
            "checkpoints": self.plan.checkpoints,
            "sessions": self.plan.sessions,
            "verdicts": self.verdicts,
            "median_ms": round(median(self.times_ms), 3),
            "p95_ms": round(p95(self.times_ms), 3),
            "context_bytes": len(self.context.encode()),
        }


def fill_run(store: Store, name: str, label: str, events: int) -> Subject:
    """A run of `name` with exactly `events` events of history, and a new session about to resume it."""
    run_id = new_run_id()
    spec = bench_spec(name, store.home)
    plan = Plan.of(events, len(spec["features"]))
    runs.insert_run(
        store,
        run_id=run_id,
        name=name,
        goal=spec["goal"],
        spec=spec,
        spec_path=None,
        workspace=spec["workspace"],
        branch=f"longrun/{run_id}",
        state=RunState.scheduled,
    )
    writer = HistoryWriter(store, run_id, spec, plan, utcnow() - EVENT_SPACING * (events + 10))
    writer.fill(label)
    session = runs.create_session(store, run_id, time_box=TIME_BOX, wrap_up=WRAP_UP)
    return Subject(label, plan, runs.get_run(store, run_id), session, writer.verdicts, [])


def measure(root: Path, small: int, large: int, repeat: int) -> dict[str, Any]:
    store = Store.open(root / STORE_DIR)
    try:
        started = time.perf_counter()
        subjects = [fill_run(store, SMALL_RUN, "small", small), fill_run(store, LARGE_RUN, "large", large)]
        fill_s = time.perf_counter() - started
        # Warm-up: first-use costs (statement compilation, cold pages) are not what is measured.
        warm = ", ".join(f"{s.label} {s.build(store):.1f} ms" for s in subjects)
        progress(f"rehydrate warm-up: {warm}")
        for k in range(repeat):
            for subject in subjects if k % 2 == 0 else subjects[::-1]:
                subject.times_ms.append(subject.build(store))
            if (k + 1) % 10 == 0 or k + 1 == repeat:
                progress(f"rehydrate: built each context {k + 1}/{repeat} times")
    finally:
        store.close()
    small_json, large_json = (s.to_json() for s in subjects)
    return {
        "benchmark": "rehydrate",
        "small": small_json,
        "large": large_json,
        "ratio": round(large_json["median_ms"] / small_json["median_ms"], 3)
        if small_json["median_ms"]
        else 0.0,
        "repeat": repeat,
        "fill_s": round(fill_s, 1),
        **versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--small", type=positive_int, default=10_000, help="events in the short run (default 10000)"
    )
    parser.add_argument(
        "--large", type=positive_int, default=1_000_000, help="events in the long run (default 1000000)"
    )
    parser.add_argument("--repeat", type=positive_int, default=50, help="timed builds per run (default 50)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the store here and keep it (default: a temp dir, removed)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    least = Plan.minimum(features=len(bench_spec(SMALL_RUN, Path.cwd())["features"]))
    if min(args.small, args.large) < least:
        raise BenchError(f"--small and --large must be at least {least} events (a session and a checkpoint)")
    with work_dir(args.dir, [STORE_DIR]) as root:
        return measure(root, args.small, args.large, args.repeat)


BENCHMARK = Benchmark(
    name="rehydrate",
    help="time to build a resume context for a short and a very long history",
    configure=configure,
    run=run,
)

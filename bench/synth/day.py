"""`synthesize`: the whole day, a run and its fork, planned and then written into a store."""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from longrun.bench.synth.plan import (
    HEAD,
    budget_usd,
    plan_spend,
    plan_steps,
    slots,
    solve_time_box,
    work_window,
)
from longrun.bench.synth.runlog import Live
from longrun.bench.synth.sink import Ids, Rows, Sink, stamp
from longrun.bench.synth.spec import FORK_MODEL, MODEL, PROBE_BUDGET, WARN_AT, price_of, synth_spec
from longrun.bench.synth.story import FORK_ACTS, FORK_AFTER, FORK_SHARE, MAIN_ACTS, MIN_EVENTS, WHO
from longrun.bench.synth.writer import RunWriter
from longrun.scheduler.spec.durations import format_duration
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log
from longrun.store.db import Store
from longrun.store.models import RunState

_RUN_INSERT = (
    "INSERT INTO run (id, name, goal, spec_json, spec_path, workspace, branch, state, created_at, "
    "updated_at, parent_run_id, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
    "cache_read_tokens) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0)"
)


@dataclass(frozen=True)
class SynthRun:
    """What `synthesize` wrote: the run and its fork, their window and sizes."""

    run_id: str
    fork_run_id: str
    start: datetime
    end: datetime
    events: int
    """Events in the run's log (exactly what was asked for)."""
    fork_events: int
    sessions: int
    fork_sessions: int
    checkpoints: int
    spent_usd: float
    tokens: int
    fork_spent_usd: float
    budget_usd: float
    time_box: timedelta
    seconds: float
    """How long writing took."""
    moments: dict[str, datetime] = field(default_factory=dict)
    """When the story's turns happened (question_asked, breaker_tripped, rewound, fork, …)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "fork_run_id": self.fork_run_id,
            "start": stamp(self.start),
            "end": stamp(self.end),
            "events": self.events,
            "fork_events": self.fork_events,
            "total_events": self.events + self.fork_events,
            "sessions": self.sessions,
            "fork_sessions": self.fork_sessions,
            "checkpoints": self.checkpoints,
            "spent_usd": round(self.spent_usd, 6),
            "tokens": self.tokens,
            "fork_spent_usd": round(self.fork_spent_usd, 6),
            "budget_usd": self.budget_usd,
            "time_box": format_duration(self.time_box),
            "seconds": round(self.seconds, 3),
            "events_per_second": round((self.events + self.fork_events) / self.seconds)
            if self.seconds
            else None,
            "moments": {k: stamp(v) for k, v in sorted(self.moments.items(), key=lambda kv: kv[1])},
        }


def _new_run_id(conn: Any, rng: random.Random, taken: set[str]) -> str:
    while True:
        run_id = f"{rng.getrandbits(32):08x}"
        if (
            run_id not in taken
            and conn.execute("SELECT 1 FROM run WHERE id = ?", (run_id,)).fetchone() is None
        ):
            taken.add(run_id)
            return run_id


def _next_ids(cursor: Any) -> Ids:
    def top(table: str) -> int:
        return int(cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1

    return Ids(top("session"), top("checkpoint"), top("approval"), top("conversation"))


def _ceil_to(value: float, step: float) -> float:
    return math.ceil(value / step) * step


def synthesize(
    store: Store, *, hours: float = 24.0, events: int = 100_000, seed: int = 0, end: datetime | None = None
) -> SynthRun:
    """Write a run of `hours` of autonomous work ending at `end` (default: now, to the minute) with
    exactly `events` events, and its fork (about 1/40 of that); see the module's docstring."""
    began = time.perf_counter()
    if events < MIN_EVENTS:
        raise ValueError(
            f"--events: at least {MIN_EVENTS} (twenty sessions and their judgements), found {events}"
        )
    if not hours > 0:
        raise ValueError(f"--hours: expected a number of hours greater than 0, found {hours:g}")
    if end is None:
        end = datetime.now(UTC).replace(second=0, microsecond=0)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end = end.astimezone(UTC)
    start = end - timedelta(hours=hours)
    box, wrap = solve_time_box(start, end)
    main_slots = slots(MAIN_ACTS, box, start + HEAD, end)
    windows = [work_window(a, s, box) for a, s in zip(MAIN_ACTS, main_slots, strict=True)]
    steps = plan_steps(MAIN_ACTS, windows, events)
    forked_at = main_slots[FORK_AFTER - 1].judged + timedelta(seconds=10)
    resumed_at = forked_at + box * 0.08
    fork_slots = slots(FORK_ACTS, box, resumed_at + timedelta(seconds=1), None)
    fork_windows = [work_window(a, s, box) for a, s in zip(FORK_ACTS, fork_slots, strict=True)]
    fork_steps = plan_steps(FORK_ACTS, fork_windows, max(300, events // FORK_SHARE))
    if fork_slots[-1].action is None or fork_slots[-1].action >= end:
        raise ValueError("the window is too short for the fork's sessions")

    rng = random.Random(f"synth:{seed}")
    name = "textstats-day"
    home = store.home
    probe = synth_spec(name, f"workspaces/{name}", MODEL, box, wrap, PROBE_BUDGET, home)
    price = price_of(probe, home, MODEL)
    fork_price = price_of(probe, home, FORK_MODEL)
    plan = plan_spend(seed, "m", MAIN_ACTS, steps, windows, price, events)
    fork_plan = plan_spend(seed, "f", FORK_ACTS, fork_steps, fork_windows, fork_price)
    budget = {
        "usd": budget_usd(plan),
        "per_session_usd": _ceil_to(max(plan.session_usd, fork_plan.session_usd) * 1.6, 0.01),
        "tokens": int(_ceil_to((plan.tokens + fork_plan.tokens) * 2, 1_000_000)),
        "usd_per_hour": _ceil_to(max(plan.usd_per_hour, fork_plan.usd_per_hour) * 2 + 1, 0.01),
    }
    spec = synth_spec(name, f"workspaces/{name}", MODEL, box, wrap, budget, home)
    assert spec.budget.usd is not None

    rows = Rows()
    with Sink(store) as sink:
        taken: set[str] = set()
        run_id = _new_run_id(sink.cursor, rng, taken)
        fork_id = _new_run_id(sink.cursor, rng, taken)
        ids = _next_ids(sink.cursor)
        fork_name = f"{name}-fork"
        fork_workspace = str(Path(spec.workspace).with_name(f"{Path(spec.workspace).name}-fork-{fork_id}"))
        overrides = [f"worker.model={FORK_MODEL}"]
        raw = {**spec.model_dump(mode="json"), "name": fork_name, "workspace": fork_workspace}
        fork_spec = RunSpec.model_validate(apply_overrides(raw, overrides))
        for rid, rspec, state, created, parent in (
            (run_id, spec, RunState.draft, start, None),
            (fork_id, fork_spec, RunState.paused, forked_at, run_id),
        ):
            sink.rows(
                _RUN_INSERT,
                [
                    (
                        rid,
                        rspec.name,
                        rspec.goal,
                        log.canonical_json(rspec.model_dump(mode="json")),
                        str(rspec.workspace),
                        f"longrun/{rid}",
                        str(state),
                        stamp(created),
                        stamp(created),
                        parent,
                    )
                ],
            )
        common = partial(RunWriter, sink=sink, ids=ids, rows=rows, seed=seed, box=box, wrap=wrap)
        main = common(key="m", run_id=run_id, spec=spec, price=price)
        main.warn_at = WARN_AT * spec.budget.usd
        fork = common(key="f", run_id=fork_id, spec=fork_spec, price=fork_price)

        def fork_now(session: Live) -> None:
            assert main.head is not None
            fork_made = {"by": WHO, "checkpoint_id": main.head, "run_id": fork_id}
            main.add_json("fork_made", fork_made, None, forked_at + timedelta(seconds=0.6))
            main.moments["fork"] = forked_at
            fork.fork_of = (main.head, main.head_commit)

        main.fork_hook = fork_now
        main.created(start, spec.name, str(spec.workspace), str(RunState.draft))
        initial = hashlib.sha1(f"{run_id}:initial".encode()).hexdigest()
        main.checkpoint(start + timedelta(seconds=0.5), None, "created", commit=initial, first=True)
        main.add_json("started", {"by": WHO}, None, start + timedelta(seconds=20))
        main.sessions(MAIN_ACTS, main_slots, [*steps[:-1], 0], "started", events)
        if main.warned_at is None or main.totals.usd >= spec.budget.usd:
            raise AssertionError("the run's spend did not cross its warning once and stay under its cap")
        main.moments["budget_warning"] = main.warned_at

        assert fork.fork_of is not None
        target, target_commit = fork.fork_of
        fork.created(forked_at, fork_spec.name, str(fork_spec.workspace), str(RunState.paused))
        first = fork.checkpoint(
            forked_at + timedelta(seconds=0.5), None, "forked", commit=target_commit, first=True
        )
        data = {
            "by": WHO,
            "checkpoint_id": first,
            "overrides": overrides,
            "parent_checkpoint_id": target,
            "parent_run_id": run_id,
        }
        fork.add_json("forked", data, None, forked_at + timedelta(seconds=0.6))
        fork.add_json("resumed", {"by": WHO}, None, resumed_at)
        fork.sessions(FORK_ACTS, fork_slots, fork_steps, "resumed", None)

        last_main = len(MAIN_ACTS)
        rows.finished_runs.append(
            (
                str(RunState.running),
                f"session {last_main} running",
                main.last_ts,
                main.head,
                None,
                *main.totals.row(),
                run_id,
            )
        )
        rows.finished_runs.append(
            (
                str(RunState.paused),
                f"paused by {WHO}",
                fork.last_ts,
                fork.head,
                None,
                *fork.totals.row(),
                fork_id,
            )
        )
        sink.flush(commit=False)
        rows.write(sink)
    # A supervisor writes a little at a time, and SQLite folds its write-ahead log back into the
    # database as it goes. These large transactions leave the last of them in the log, which
    # every read would then search; fold it back, as a day of real writing would have left it.
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    return SynthRun(
        run_id=run_id,
        fork_run_id=fork_id,
        start=start,
        end=end,
        events=main.seq,
        fork_events=fork.seq,
        sessions=len(MAIN_ACTS),
        fork_sessions=len(FORK_ACTS),
        checkpoints=sum(1 for r in rows.checkpoints.values() if r[1] == run_id),
        spent_usd=main.totals.usd,
        tokens=main.totals.tokens,
        fork_spent_usd=fork.totals.usd,
        budget_usd=spec.budget.usd,
        time_box=box,
        seconds=time.perf_counter() - began,
        moments=main.moments | {f"fork_{k}": v for k, v in fork.moments.items()},
    )

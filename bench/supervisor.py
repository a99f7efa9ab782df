"""`supervisor`: how long the supervisor's reconcile tick takes with 10, 100 and 1,000 runs.

Each size gets a store of its own, filled with scheduled runs whose next session is in the future
(a third every six hours, a third on a nightly cron line, a third back to back from tomorrow), so
a tick has all of its work to do and no session starts. Then, in this process, a real
`Supervisor` on that store (its APScheduler started on the store's job table, as `longrun
daemon` does):

- `first_tick_s`: the first reconcile, which makes an APScheduler job for every run and writes
  every run's plan;
- `steady_tick_s`: the median of `--ticks` reconciles after it, the tick a supervisor pays every
  second for as long as it runs.

Each figure also comes as a ratio against the smallest size's in the same run. Targets: a steady
tick within 0.1 s at 100 runs and 1 s at 1,000, a first tick within 5 s at 1,000 (the lease's
time to live is 20 s, so a tick must never come near it).
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    BenchError,
    Benchmark,
    bench_spec,
    median,
    positive_int,
    progress,
    ratio,
    versions,
)
from longrun.bench.common import work_dir as bench_dir
from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.models import RunState, utcnow

SIZES = (10, 100, 1000)
TICKS = 10
TARGETS = {
    "steady_tick_s@100": 0.1,
    "steady_tick_s@1000": 1.0,
    "first_tick_s@1000": 5.0,
}


def _schedules() -> list[dict[str, Any]]:
    tomorrow = (utcnow() + timedelta(days=1)).replace(microsecond=0).isoformat()
    return [
        {"mode": "interval", "every": "6h", "not_before": tomorrow},
        {"mode": "cron", "cron": "0 3 * * *"},
        {"mode": "back_to_back", "not_before": tomorrow},
    ]


def fill(store: Store, count: int, base: Path) -> None:
    """`count` scheduled runs, their next sessions all in the future."""
    schedules = _schedules()
    spec = bench_spec("sup", base)
    for i in range(count):
        run_id = f"{i:08x}"
        runs.insert_run(
            store,
            run_id=run_id,
            name=f"sup-{i}",
            goal=spec["goal"],
            spec=spec | {"name": f"sup-{i}", "schedule": spec["schedule"] | schedules[i % 3]},
            spec_path=None,
            workspace=str(base / "workspaces" / run_id),
            branch=f"longrun/{run_id}",
            state=RunState.scheduled,
        )


def measure(home: Path, count: int, ticks: int) -> dict[str, Any]:
    store = Store.open(home, create=True)
    fill(store, count, home)
    supervisor = Supervisor(store, SupervisorConfig(tick=3600))
    supervisor.scheduler.start(paused=True)  # its jobs are in the future: nothing would fire anyway
    try:
        started = time.perf_counter()
        supervisor.reconcile()
        first = time.perf_counter() - started
        steady = []
        for _ in range(ticks):
            started = time.perf_counter()
            supervisor.reconcile()
            steady.append(time.perf_counter() - started)
        jobs = len(supervisor.scheduler.get_jobs())
    finally:
        supervisor.scheduler.shutdown(wait=False)
        supervisor.pool.shutdown(wait=True)
    planned = sum(1 for r in runs.list_runs(store) if r.next_session_at is not None)
    if planned != count:
        raise BenchError(f"{count} runs: the tick planned {planned} of them")
    if runs.live_sessions(store):
        raise BenchError(f"{count} runs: a session started, so the tick measured more than itself")
    return {
        "runs": count,
        "jobs": jobs,
        "first_tick_s": round(first, 4),
        "steady_tick_s": round(median(steady), 4),
    }


def sizes(text: str) -> tuple[int, ...]:
    try:
        found = tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--sizes: {exc}") from None
    return tuple(sorted(set(found)))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=sizes, default=SIZES, help="numbers of runs, comma-separated")
    parser.add_argument("--ticks", type=positive_int, default=TICKS, help="steady ticks timed at each size")
    parser.add_argument("--dir", type=Path, help="keep the stores here (default: a temp dir, removed)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    with bench_dir(args.dir, [f"runs-{n}" for n in args.sizes]) as root:
        for count in args.sizes:
            progress(f"{count} runs: filling the store and timing the first and {args.ticks} steady ticks")
            results.append(measure(root / f"runs-{count}", count, args.ticks))
    base = results[0]
    for figures in results:
        figures["ratios"] = {key: ratio(figures[key], base[key]) for key in ("first_tick_s", "steady_tick_s")}
    by_size = {r["runs"]: r for r in results}
    met = {}
    for key, limit in TARGETS.items():
        name, _, count = key.partition("@")
        if int(count) in by_size:
            met[key] = by_size[int(count)][name] <= limit
    return {
        "benchmark": "supervisor",
        "baseline": f"{base['runs']} runs",
        "sizes": results,
        "targets": {k: v for k, v in TARGETS.items() if k in met},
        "met": met,
        "meets_targets": all(met.values()),
        **versions(),
    }


BENCHMARK = Benchmark(
    "supervisor",
    "the supervisor's first and steady reconcile tick at 10, 100 and 1,000 runs",
    configure,
    run,
)

"""`start`: how long a session takes to get going, from the scheduler's fire to its first event and
to its first model call.

A real supervisor runs in this process on a store of its own, with one run of the built-in worker
against the scripted model server (each session: one model call, then the model ends its turn)
in the session's sandbox when bubblewrap is here. The bench fires the run's job as APScheduler
does (`Supervisor.on_fire`), then reads from the store when the session recorded
`session_started` and when its first model call left (the call's event time less its duration),
and waits for the session to be judged before firing again. After one session that warms up (the
supervisor's warm starter may still be importing), over `--sessions` fires it reports
the p50 and p95 of both, and, measured in the same run, a bare `python -c pass` start, which no
session can beat (`ratios`).

Target: the p95 from fire to first model call within 1 s on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.bench.common import BenchError, Benchmark, median, p95, positive_int, progress, ratio, versions
from longrun.bench.common import work_dir as bench_dir
from longrun.scheduler.control import create_run_from_file, start
from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import utcnow

SESSIONS = 20
TARGET_P95_S = 1.0
GIVE_UP_S = 120.0

SPEC = """
name = "start"
goal = "Measure how fast a session starts."
workspace = "workspace"

[worker]
backend = "scripted"
script = "script.json"

[schedule]
mode = "interval"
every = "1d"

[breakers]
no_progress_sessions = 1000
consecutive_failures = 1000

[sandbox]
mode = "{sandbox}"

[[features]]
id = "never"
description = "Never passes, so the run goes on."
check = "false"
"""


def _wait(done: Any, what: str) -> Any:
    started = time.monotonic()
    while True:
        found = done()
        if found:
            return found
        if time.monotonic() - started > GIVE_UP_S:
            raise BenchError(f"gave up after {GIVE_UP_S:g}s waiting for {what}")
        time.sleep(0.005)


def bare_starts(count: int) -> list[float]:
    """Seconds from starting `python -c pass` to its exit, `count` times."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return times


def _first_call_left(store: Store, run_id: str, session_id: int) -> datetime | None:
    calls = [e for e in log.read_events(store, run_id, kinds=["model_call"]) if e.session_id == session_id]
    if not calls:
        return None
    first = calls[0]
    return first.ts - timedelta(milliseconds=int(first.data.get("duration_ms") or 0))


def measure(root: Path, sessions: int) -> dict[str, Any]:
    sandbox = "on" if shutil.which("bwrap") else "off"
    (root / "workspace").mkdir(parents=True)
    script = {"sessions": [{"turns": [{"text": "Nothing to do this time."}]}], "after_last": "repeat"}
    (root / "script.json").write_text(json.dumps(script))
    (root / "longrun.toml").write_text(SPEC.format(sandbox=sandbox))
    store = Store.open(root / "home", create=True)
    run = create_run_from_file(store, root / "longrun.toml")
    start(store, run.id)
    supervisor = Supervisor(store, SupervisorConfig(tick=1.0))
    stop = threading.Event()
    serving = threading.Thread(target=supervisor.serve, kwargs={"until": stop.is_set}, daemon=True)
    serving.start()
    to_started: list[float] = []
    to_call: list[float] = []
    try:
        _wait(lambda: supervisor.holding and supervisor.scheduler.running, "the supervisor to start")
        for n in range(0, sessions + 1):  # session 0 warms up: the starter may still be importing
            fired = utcnow()
            supervisor.on_fire(run.id, "bench")
            session = _wait(
                lambda n=n: next((s for s in runs.list_sessions(store, run.id) if s.n == n + 1), None),
                f"session {n} to be made",
            )
            ended = _wait(
                lambda s=session: (v := runs.get_session(store, s.id)).settled_at is not None and v,
                f"session {n} to end and be judged",
            )
            if ended.end_reason != "finished" or ended.started_at is None:
                raise BenchError(f"session {n} ended {ended.state} ({ended.end_reason})")
            left = _first_call_left(store, run.id, ended.id)
            if left is None:
                raise BenchError(f"session {n} made no model call")
            if n:
                to_started.append((ended.started_at - fired).total_seconds())
                to_call.append((left - fired).total_seconds())
    finally:
        stop.set()
        supervisor.stop()
        serving.join(30)
        supervisor.shutdown()
        store.close()
    return {"sandbox": sandbox, "to_started": to_started, "to_first_call": to_call}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=positive_int, default=SESSIONS, help="sessions to fire")
    parser.add_argument("--dir", type=Path, help="keep the store here (default: a temp dir, removed)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_dir(args.dir, ["home", "workspace"]) as root:
        progress(f"firing {args.sessions} sessions, one after another")
        found = measure(root, args.sessions)
    progress("timing bare python starts")
    bare = bare_starts(args.sessions)
    figures = {
        "fire_to_started_s": {"p50": median(found["to_started"]), "p95": p95(found["to_started"])},
        "fire_to_first_call_s": {"p50": median(found["to_first_call"]), "p95": p95(found["to_first_call"])},
        "bare_python_s": {"p50": median(bare), "p95": p95(bare)},
    }
    rounded = {k: {q: round(v, 4) for q, v in qs.items()} for k, qs in figures.items()}
    met = {"fire_to_first_call_s.p95": figures["fire_to_first_call_s"]["p95"] <= TARGET_P95_S}
    return {
        "benchmark": "start",
        "sessions": args.sessions,
        "sandbox": found["sandbox"],
        **rounded,
        "ratios": {
            "fire_to_started_p50_vs_bare": ratio(
                figures["fire_to_started_s"]["p50"], figures["bare_python_s"]["p50"]
            ),
            "fire_to_first_call_p50_vs_bare": ratio(
                figures["fire_to_first_call_s"]["p50"], figures["bare_python_s"]["p50"]
            ),
        },
        "targets": {"fire_to_first_call_s.p95": TARGET_P95_S},
        "met": met,
        "meets_targets": all(met.values()),
        **versions(),
    }


BENCHMARK = Benchmark(
    "start",
    "a session's start: scheduler fire to session_started and to its first model call (p50, p95)",
    configure,
    run,
)

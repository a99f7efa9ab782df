"""`judge`: judging the demo's head checkpoint, against running its checks by hand, in the same run.

Set-up (not timed): the built-in demo is run to its end in a fresh store, as `longrun demo
--headless --auto-approve` runs it: the scripted model, no network, its tool-call approvals
approved, one session after another in the foreground until the run is done.

Then, `repeat` times after one warm-up each, taking turns so that a machine that slows down
mid-run slows both:

- `judge`: `judge_checkpoint` on the run's head checkpoint, everything it does: every command
  check, the test ratchet, and the rubric (judged at the end of the last session and unchanged
  since, so it is carried, the same every time);
- `by_hand`: each feature's `check` from the run's spec, one after the other, with bash in the
  workspace: what a person would type, in a shell with longrun's environment active (longrun's
  Python first on PATH, as the judge has it) and without ANTHROPIC_* or LONGRUN_* variables.

Target: the judge's median is at most 1.5 times the by-hand median.

Layout under `--dir`: `store/longrun.db`, and the demo's spec and workspace in `store/demo/`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    BenchError,
    Benchmark,
    median,
    p95,
    positive_int,
    progress,
    ratio,
    versions,
    work_dir,
)
from longrun.scheduler.control import decide, prepare_demo, run_session_now
from longrun.scheduler.judging.judge import judge_checkpoint
from longrun.scheduler.spec.run import RunSpec
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.models import RunState
from longrun.store.runs import RunView

STORE_DIR = "store"
REPEAT = 5
MAX_SESSIONS = 6
"""Sessions the demo may take before the set-up gives up (its script ends done after three)."""
TARGET_RATIO = 1.5
JUDGED_BY = "bench"


def run_demo(store: Store) -> tuple[RunView, int]:
    """The demo run, done, and the sessions it took: each run in the foreground, one after another."""
    try:
        run = prepare_demo(store, ["worker.backend=scripted"])
        for n in range(1, MAX_SESSIONS + 1):
            run_session_now(store, run.id)
            approved = _approve_tool_calls(store, run.id)
            run = runs.get_run(store, run.id)
            progress(f"judge set-up: demo session {n} ended, run {run.state}" + approved)
            if run.state == RunState.done:
                return run, n
            if run.state not in (RunState.draft, RunState.scheduled):
                break
    except LongrunError as exc:
        raise BenchError(f"the demo could not run: {exc}") from None
    raise BenchError(f"demo run {run.id} is {run.state}, not done, after {n} sessions: {run.state_reason}")


def _approve_tool_calls(store: Store, run_id: str) -> str:
    """Approve the run's pending tool calls, as `--auto-approve` does; a note of how many, or ''."""
    pending = [a for a in runs.list_approvals(store, run_id, state="pending") if a.kind == "tool_call"]
    for approval in pending:
        decide(store, approval.id, approve=True, by=f"{JUDGED_BY} --auto-approve")
    return f" ({len(pending)} tool call{'s' * (len(pending) != 1)} approved)" if pending else ""


def by_hand_env() -> dict[str, str]:
    """The shell a person types the checks into: longrun's venv active, no API or longrun settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "LONGRUN_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def time_judge(store: Store, run_id: str) -> float:
    started = time.perf_counter()
    judge_checkpoint(store, run_id, by=JUDGED_BY)
    return time.perf_counter() - started


def time_by_hand(checks: Sequence[str], workspace: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    for check in checks:
        done = subprocess.run(["bash", "-c", check], cwd=workspace, env=env, capture_output=True)
        if done.returncode != 0:
            tail = done.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise BenchError(f"by hand, {check!r} exited {done.returncode} in {workspace}: {tail[0]}")
    return time.perf_counter() - started


def judged_statuses(store: Store, run: RunView) -> dict[str, str]:
    """What the judge said last about each item (features and the ratchet) at the head checkpoint."""
    latest = runs.latest_verdicts(store, run.id)
    return {f: v.status for f, v in sorted(latest.items()) if v.checkpoint_id == run.head_checkpoint_id}


def measure(root: Path, repeat: int) -> dict[str, Any]:
    store = Store.open(root / STORE_DIR)
    try:
        started = time.perf_counter()
        run, sessions = run_demo(store)
        setup_s = time.perf_counter() - started
        spec = RunSpec.model_validate(run.spec)
        checks = [f.check for f in spec.features if f.check]
        workspace, env = Path(run.workspace), by_hand_env()
        # Warm-up: first-use costs (imports, the scripted judge's server, cold caches) are not measured.
        warm_judge, warm_hand = time_judge(store, run.id), time_by_hand(checks, workspace, env)
        progress(f"judge warm-up: judge {warm_judge:.2f} s, by hand {warm_hand:.2f} s ({len(checks)} checks)")
        judged: list[float] = []
        by_hand: list[float] = []
        for k in range(repeat):
            if k % 2 == 0:
                judged.append(time_judge(store, run.id))
                by_hand.append(time_by_hand(checks, workspace, env))
            else:
                by_hand.append(time_by_hand(checks, workspace, env))
                judged.append(time_judge(store, run.id))
            progress(f"judge {k + 1}/{repeat}: judge {judged[-1]:.2f} s, by hand {by_hand[-1]:.2f} s")
        statuses = judged_statuses(store, run)
    finally:
        store.close()
    not_passing = sorted(f for f, s in statuses.items() if s != "pass")
    if not_passing:
        raise BenchError(f"the judge does not pass the demo's head checkpoint: {', '.join(not_passing)}")
    got = ratio(median(judged), median(by_hand))
    return {
        "benchmark": "judge",
        "run_id": run.id,
        "checkpoint_id": run.head_checkpoint_id,
        "features": len(spec.features),
        "checks": len(checks),
        "judged": statuses,
        "judge_median_s": round(median(judged), 3),
        "judge_p95_s": round(p95(judged), 3),
        "by_hand_median_s": round(median(by_hand), 3),
        "by_hand_p95_s": round(p95(by_hand), 3),
        "ratio": got,
        "targets": {"ratio": TARGET_RATIO},
        "meets_targets": got <= TARGET_RATIO,
        "repeat": repeat,
        "sessions": sessions,
        "setup_s": round(setup_s, 1),
        "versions": versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeat", type=positive_int, default=REPEAT, help=f"timed runs of each side (default {REPEAT})"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the store and the demo here and keep them (default: a temp dir, removed)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    with work_dir(args.dir, [STORE_DIR]) as root:
        return measure(root, args.repeat)


BENCHMARK = Benchmark(
    name="judge",
    help="time to judge the demo's head checkpoint, against running its checks by hand",
    configure=configure,
    run=run,
)

"""`overshoot`: randomized scripted sessions run to their caps in bulk; the worst spent/cap.

The property tests (`tests/e2e/test_guards.py`, `tests/e2e/test_claude_code.py`) try a few
random caps each time the suite runs; this runs many. Each session is real: the built-in agent
through the real Anthropic SDK against the scripted model server on loopback, in its own
session process, started and watched as `longrun run session` does, its calls priced and
checked by the harness before they are made. Each session's script repeats one tool call until a
cap ends it, each call's output drawn at random (the server clamps it to the `max_tokens` the
harness let through, as the API does; input usage is the server's estimate of the request).

Session `2k` starts a new run with random caps: `usd` always, `per_session_usd` (a share of it),
`per_day_usd` and `tokens` sometimes, and a random `max_tokens`. Session `2k+1` raises that run's
caps by a random factor (as `longrun budget` does) and resumes it. After each session every cap
that applied is read back from the store (the run's totals, the session's, the day's) and
divided by its limit; the result is the largest such ratio (target: at most 1.0, never over a
cap), where it happened (rerun with the same `--seed` to see it again), how the sessions ended,
and whether the log's priced calls add up to the stored totals.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longrun.bench.common import Benchmark, positive_int, progress, versions, work_dir
from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.runs import RunView, SessionView

SESSIONS = 200
TARGET_WORST = 1.0
STORE_DIR = "store"
RUNS_DIR = "runs"
LEDGER_TOLERANCE_USD = 1e-9


@dataclass(frozen=True)
class Draw:
    """One run's random caps and script, drawn from the session's own seed."""

    usd: float
    per_session_share: float | None
    per_day_usd: float | None
    tokens: int | None
    max_tokens: int
    outputs: tuple[int, ...]

    @classmethod
    def of(cls, rng: random.Random) -> Draw:
        usd = rng.uniform(0.01, 0.2)
        return cls(
            usd=usd,
            per_session_share=rng.uniform(0.2, 1.0) if rng.random() < 0.5 else None,
            per_day_usd=usd * rng.uniform(0.3, 1.5) if rng.random() < 0.25 else None,
            tokens=rng.randint(20_000, 300_000) if rng.random() < 0.25 else None,
            max_tokens=rng.randint(300, 8000),
            outputs=tuple(rng.randint(1, 4000) for _ in range(rng.randint(3, 12))),
        )

    def budget(self) -> dict[str, float | int]:
        caps: dict[str, float | int] = {"usd": self.usd}
        if self.per_session_share is not None:
            caps["per_session_usd"] = self.usd * self.per_session_share
        if self.per_day_usd is not None:
            caps["per_day_usd"] = self.per_day_usd
        if self.tokens is not None:
            caps["tokens"] = self.tokens
        return caps


WORKERS = {"scripted": "bash", "claude-code": "Bash"}
"""The backends whose sessions can be run, and the name each gives its shell tool."""


def write_run(folder: Path, name: str, draw: Draw, worker: str) -> Path:
    """The run's spec, its script and its empty workspace; returns the spec's path."""
    folder.mkdir(parents=True)
    (folder / "ws").mkdir()
    tool = WORKERS[worker]
    turns = [
        {"tool": tool, "input": {"command": "true"}, "usage": {"output_tokens": o}} for o in draw.outputs
    ]
    (folder / "script.json").write_text(
        json.dumps({"sessions": [{"turns": turns, "loop": True}], "after_last": "repeat"})
    )
    caps = "".join(f"{key} = {value!r}\n" for key, value in draw.budget().items())
    spec = folder / "run.toml"
    spec.write_text(
        f'name = "{name}"\ngoal = "spend to the caps"\nworkspace = "ws"\n'
        f'[worker]\nbackend = "{worker}"\nscript = "script.json"\nmax_tokens = {draw.max_tokens}\n'
        # A time box far beyond what reaching a cap takes: a session that never did would show in `ended`.
        f'[session]\ntime_box = "5m"\n[budget]\n{caps}'
        # The spend-rate breaker would end some sessions before their caps: only the caps are tried.
        "[breakers]\nmax_usd_per_hour = 100000.0\n"
    )
    return spec


@dataclass
class Worst:
    ratio: float = 0.0
    where: dict[str, Any] | None = None

    def see(self, ratio: float, where: dict[str, Any]) -> None:
        if self.where is None or ratio > self.ratio:
            self.ratio, self.where = ratio, where


def cap_ratios(store: Store, run: RunView, session: SessionView) -> list[tuple[str, float, float]]:
    """(cap, spent, limit) for every cap of the run's budget, read back from the store."""
    budget = run.spec.get("budget", {})
    with store.reading() as conn:
        # Every UTC day the run spent on: a session that runs past midnight spends on two.
        day = conn.exec_driver_sql(
            "SELECT max(spent_usd) FROM spend_day WHERE run_id = ?", (run.id,)
        ).scalar()
    spent = {
        "usd": run.usage.usd,
        "tokens": float(run.usage.tokens),
        "per_session_usd": session.usage.usd,
        "per_day_usd": float(day or 0.0),
    }
    return [(cap, spent[cap], float(budget[cap])) for cap in spent if budget.get(cap) is not None]


def ledger_agrees(store: Store, run: RunView) -> bool:
    """The run's priced calls in its log add up to its stored spend."""
    calls = log.read_events(store, run.id, kinds=["model_call"])
    return abs(sum(c.data["usage"]["usd"] for c in calls) - run.usage.usd) <= LEDGER_TOLERANCE_USD


def draw_rng(seed: int, i: int) -> random.Random:
    """The random source of session `i` under `seed`: any one session can be drawn again alone."""
    return random.Random(seed * 1_000_003 + i)


def start_or_resume(store: Store, root: Path, rng: random.Random, i: int, run_id: str, worker: str) -> str:
    """Session `i`'s run: a new one with its own draw (even `i`), or the last one with its caps
    raised by a random factor (odd `i`), as a person raises them after a budget stop."""
    if i % 2 == 0:
        name = f"overshoot-{i}"
        return create_run_from_file(store, write_run(root / RUNS_DIR / name, name, Draw.of(rng), worker)).id
    factor = rng.uniform(1.2, 3.0)
    raised = {
        cap: (int(limit * factor) if cap == "tokens" else limit * factor)
        for cap, limit in runs.get_run(store, run_id).spec["budget"].items()
        if cap in ("usd", "tokens", "per_day_usd") and limit is not None
    }
    control.set_budget(store, run_id, raised, by="bench", comment="overshoot: raise and resume")
    return run_id


def measure(root: Path, sessions: int, seed: int, worker: str = "scripted") -> dict[str, Any]:
    store = Store.open(root / STORE_DIR)
    worst = Worst()
    ended: Counter[str] = Counter()
    calls = idle = 0
    mismatched: list[str] = []
    started = time.perf_counter()
    run_id = ""
    try:
        for i in range(sessions):
            run_id = start_or_resume(store, root, draw_rng(seed, i), i, run_id, worker)
            session = run_session_now(store, run_id)
            run = runs.get_run(store, run_id)
            ended[session.end_reason or session.state] += 1
            made = sum(
                1 for e in log.read_events(store, run_id, kinds=["model_call"]) if e.session_id == session.id
            )
            calls += made
            idle += made == 0
            for cap, spent, limit in cap_ratios(store, run, session):
                where = {
                    "session": i,
                    "run": run.name,
                    "n": session.n,
                    "cap": cap,
                    "spent": spent,
                    "limit": limit,
                }
                worst.see(spent / limit, where)
            if (i % 2 == 1 or i == sessions - 1) and not ledger_agrees(store, run):
                mismatched.append(run.name)
            if (i + 1) % 10 == 0 or i + 1 == sessions:
                progress(f"overshoot: {i + 1}/{sessions} sessions, worst spent/cap so far {worst.ratio:.6f}")
    finally:
        store.close()
    return {
        "benchmark": "overshoot",
        "sessions": sessions,
        "seed": seed,
        "worker": worker,
        # Not rounded: a ratio of 1.0000000001 is an overshoot and must not print as 1.0.
        "worst_spent_over_cap": worst.ratio,
        "worst": worst.where,
        "ended": dict(ended),
        "model_calls": calls,
        # Caps too small for one call's worst case: the harness ends the session before any call.
        "sessions_without_calls": idle,
        "ledger_mismatches": mismatched,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "targets": {"worst_spent_over_cap": TARGET_WORST},
        "meets_targets": worst.ratio <= TARGET_WORST and not mismatched,
        **versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sessions",
        type=positive_int,
        default=SESSIONS,
        help=f"scripted sessions to run (default {SESSIONS})",
    )
    parser.add_argument(
        "--worker",
        choices=sorted(WORKERS),
        default="scripted",
        help="the built-in agent (default) or Claude Code's CLI, each against the scripted model server",
    )
    parser.add_argument("--seed", type=int, default=0, help="the seed every draw derives from (default 0)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the store and runs here and keep them (default: a temp dir)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    with work_dir(args.dir, [STORE_DIR, RUNS_DIR]) as root:
        return measure(root, args.sessions, args.seed, args.worker)


BENCHMARK = Benchmark(
    name="overshoot",
    help="randomized scripted sessions run to their caps; the worst spent/cap (never over 1.0)",
    configure=configure,
    run=run,
)

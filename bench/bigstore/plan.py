"""The big store's runs, decided before anything is written: how many, in which states, with
how many events each (one run about half of them, the others a heavy-tailed share) and how
many sessions those make."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from longrun.store.models import RunState

MIN_EVENTS_PER_RUN = 24
"""A run gets at least its creation, one whole session with its judgement, and how it ended."""
EVENTS_PER_SESSION = 400
MAX_SESSIONS = 400
BIGGEST_SHARE = 0.5

STATE_WEIGHTS = (
    (RunState.done, 30),
    (RunState.scheduled, 14),
    (RunState.paused, 12),
    (RunState.running, 8),
    (RunState.awaiting_approval, 10),
    (RunState.tripped, 6),
    (RunState.failed, 10),
    (RunState.archived, 10),
)
ACTIVE = {RunState.running, RunState.scheduled, RunState.awaiting_approval, RunState.tripped, RunState.paused}

PROJECTS = (
    "textstats",
    "billing",
    "docs-site",
    "search-api",
    "ingest",
    "mobile-app",
    "ledger",
    "auth-service",
    "notebooks",
    "scheduler",
    "cli",
    "payments",
    "reports",
    "crawler",
    "etl",
    "dashboards",
)
TASKS = (
    "migrate-orm",
    "add-tests",
    "fix-flaky-ci",
    "upgrade-deps",
    "typing",
    "refactor-config",
    "i18n",
    "rate-limits",
    "caching",
    "docs",
    "perf",
    "py313",
    "logging",
    "retry-policy",
    "pagination",
    "dark-mode",
)


@dataclass
class RunPlan:
    """One run's shape, decided before anything is written."""

    run_id: str
    name: str
    state: str
    events: int
    sessions: int
    end: datetime
    span: timedelta
    passing_fraction: float

    @property
    def live(self) -> bool:
        return self.state == RunState.running


def plan_runs(
    rng: random.Random, runs: int, events: int, now: datetime, biggest_share: float, features: int
) -> list[RunPlan]:
    counts = _shares(rng, runs, events, biggest_share)
    states = [s for s, w in STATE_WEIGHTS for _ in range(w)]
    taken: set[str] = set()
    plans = []
    for k, count in enumerate(counts):
        run_id = f"{rng.getrandbits(32):08x}"
        while run_id in taken:
            run_id = f"{rng.getrandbits(32):08x}"
        taken.add(run_id)
        name = f"{PROJECTS[k % len(PROJECTS)]}-{TASKS[(k // len(PROJECTS)) % len(TASKS)]}"
        if k >= len(PROJECTS) * len(TASKS):
            name += f"-{k // (len(PROJECTS) * len(TASKS)) + 1}"
        state = RunState.running if k == 0 else rng.choice(states)
        if state in ACTIVE:
            end = now - timedelta(seconds=5 if state == RunState.running else rng.uniform(60, 6 * 3600))
        else:
            end = now - timedelta(seconds=rng.uniform(6 * 3600, 25 * 86400))
        span = timedelta(seconds=count * rng.uniform(1.5, 3.0))
        fraction = 1.0 if state in (RunState.done, RunState.archived) else rng.uniform(0.0, 0.8)
        sessions = _sessions_for(count, state, features)
        plans.append(RunPlan(run_id, name, state, count, sessions, end, span, fraction))
    return plans


def _shares(rng: random.Random, runs: int, events: int, biggest_share: float) -> list[int]:
    """Events per run: the first run about `biggest_share` of all, the others a heavy-tailed share."""
    if runs == 1:
        return [events]
    floor = MIN_EVENTS_PER_RUN
    biggest = max(floor, min(int(events * biggest_share), events - floor * (runs - 1)))
    rest = events - biggest - floor * (runs - 1)
    weights = [rng.paretovariate(1.3) for _ in range(runs - 1)]
    total = sum(weights)
    extra = [int(rest * w / total) for w in weights]
    extra[-1] += rest - sum(extra)
    return [biggest] + [floor + e for e in extra]


def _tail_size(state: str) -> int:
    """Events after the last session, saying how the run came to its state."""
    tails: dict[str, int] = {
        RunState.done: 1,
        RunState.archived: 1,
        RunState.awaiting_approval: 2,
        RunState.tripped: 2,
        RunState.paused: 2,
    }
    return tails.get(state, 0)


def structural_events(state: str, sessions: int, features: int, live: bool) -> int:
    """Events that are not model or tool work: the run's creation and end, and each session's
    start, checkpoints, end and judgement (a live session has no end and no judgement yet)."""
    ended = 9 + features
    last = 5 if live else ended
    return 3 + _tail_size(state) + ended * (sessions - 1) + last


def _sessions_for(count: int, state: str, features: int) -> int:
    sessions = max(1, min(MAX_SESSIONS, count // EVENTS_PER_SESSION))
    live = state == RunState.running
    while sessions > 1 and structural_events(state, sessions, features, live) > count:
        sessions -= 1
    return sessions

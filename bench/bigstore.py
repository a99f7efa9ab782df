"""A big store, fast: many runs of every state and a log of a million events, for the UI benchmark.

`fill(store, runs, events)` writes `runs` runs with their sessions, checkpoints (a chain of parents
ending at the run's head), verdicts, approvals (some pending), breakers (some open) and `events`
events spread over them, skewed as real stores are: one run holds about half of all events, the
others share the rest unevenly. The rows have the shapes the scheduler writes; the payloads of
model calls and tool calls are the benchmark's typical ones (`common.sample_event`).

It goes around the store's write functions on purpose: rows are inserted with `executemany` on
the store's own connection, a batch of runs per transaction, with their ids chosen up front, and
each run's hash chain computed with `log.event_hash` as they are written, so a million events take
seconds and `verify_chain` holds for every run. A fixed seed makes the same store every time
(except for times, which are laid out back from `now`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from longrun.bench.common import (
    APPROVAL_INSERT,
    BREAKER_INSERT,
    CHECKPOINT_INSERT,
    EVENT_INSERT,
    SESSION_INSERT,
    VERDICT_INSERT,
    Totals,
    bench_spec,
    sample_event,
)
from longrun.store import log
from longrun.store.db import Store
from longrun.store.models import RunState, SessionState, iso, utcnow

MIN_EVENTS_PER_RUN = 24
"""A run gets at least its creation, one whole session with its judgement, and how it ended."""
EVENTS_PER_SESSION = 400
MAX_SESSIONS = 400
BIGGEST_SHARE = 0.5
BATCH_EVENTS = 100_000
"""Events written per transaction (a run's events may span several)."""
TEMPLATES = 1200
"""Distinct model/tool payloads cycled through (a multiple of the 12-event period of sample_event)."""
TIME_BOX = timedelta(hours=5)
WRAP_UP = timedelta(minutes=10)

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

_RUN_INSERT = (
    "INSERT INTO run (id, name, goal, spec_json, workspace, branch, state, created_at, updated_at, "
    "spent_usd, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0)"
)
_RUN_FINISH = (
    "UPDATE run SET state_reason = ?, updated_at = ?, head_checkpoint_id = ?, next_session_at = ?, "
    "next_reason = ?, spent_usd = ?, input_tokens = ?, output_tokens = ?, cache_write_tokens = ?, "
    "cache_read_tokens = ? WHERE id = ?"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Template:
    kind: str
    data: str
    usage: tuple[int, int, int, int, float] | None


def _templates() -> list[_Template]:
    out = []
    for i in range(TEMPLATES):
        kind, data = sample_event(i)
        usage = None
        if kind == "model_call":
            u = data["usage"]
            usage = (
                u["input_tokens"],
                u["output_tokens"],
                u["cache_write_tokens"],
                u["cache_read_tokens"],
                u["usd"],
            )
        out.append(_Template(kind, log.canonical_json(data), usage))
    return out


@dataclass
class _Plan:
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


@dataclass
class _Ids:
    """The next id of each table with an integer key (ids are chosen, not returned)."""

    session: int
    checkpoint: int
    approval: int


@dataclass
class _Rows:
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoints: list[tuple[Any, ...]] = field(default_factory=list)
    verdicts: list[tuple[Any, ...]] = field(default_factory=list)
    approvals: list[tuple[Any, ...]] = field(default_factory=list)
    breakers: list[tuple[Any, ...]] = field(default_factory=list)
    finished_runs: list[tuple[Any, ...]] = field(default_factory=list)


def fill(
    store: Store,
    runs: int,
    events: int,
    *,
    seed: int = 20261120,
    now: datetime | None = None,
    biggest_share: float = BIGGEST_SHARE,
    workspaces: Path | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write `runs` runs and `events` events into `store`; return the run ids, the biggest run first.

    The store may hold other runs already; these are added beside them. `events` must be at least
    `MIN_EVENTS_PER_RUN` per run. Workspaces are named (not made) under `workspaces`, by default
    the store's `workspaces` folder.
    """
    if runs < 1:
        raise ValueError("fill at least one run")
    if events < runs * MIN_EVENTS_PER_RUN:
        raise ValueError(f"{events} events cannot fill {runs} runs (at least {MIN_EVENTS_PER_RUN} a run)")
    now = now or utcnow()
    rng = random.Random(seed)
    spec = bench_spec("bench", store.home)
    plans = _plans(rng, runs, events, now, biggest_share, len(spec["features"]))
    writer = _Writer(store, spec, _templates(), now, rng, workspaces or store.home / "workspaces")
    with store.writing() as conn:
        writer.ids = _next_ids(conn)
    written = 0
    batch: list[_Plan] = []
    for plan in plans:
        batch.append(plan)
        if sum(p.events for p in batch) >= BATCH_EVENTS or plan is plans[-1]:
            writer.write(batch)
            written += sum(p.events for p in batch)
            batch = []
            if progress is not None:
                progress(f"bigstore: {written:,}/{events:,} events, {plans.index(plan) + 1}/{runs} runs")
    return [p.run_id for p in plans]


def _next_ids(conn: Connection) -> _Ids:
    def top(table: str) -> int:
        return int(conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()) + 1

    return _Ids(top("session"), top("checkpoint"), top("approval"))


def _plans(
    rng: random.Random, runs: int, events: int, now: datetime, biggest_share: float, features: int
) -> list[_Plan]:
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
        plans.append(_Plan(run_id, name, state, count, sessions, end, span, fraction))
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
    return {
        RunState.done: 1,
        RunState.archived: 1,
        RunState.awaiting_approval: 2,
        RunState.tripped: 2,
        RunState.paused: 2,
    }.get(state, 0)


def _structural(state: str, sessions: int, features: int, live: bool) -> int:
    """Events that are not model or tool work: the run's creation and end, and each session's
    start, checkpoints, end and judgement (a live session has no end and no judgement yet)."""
    ended = 9 + features
    last = 5 if live else ended
    return 3 + _tail_size(state) + ended * (sessions - 1) + last


def _sessions_for(count: int, state: str, features: int) -> int:
    sessions = max(1, min(MAX_SESSIONS, count // EVENTS_PER_SESSION))
    live = state == RunState.running
    while sessions > 1 and _structural(state, sessions, features, live) > count:
        sessions -= 1
    return sessions


class _Writer:
    def __init__(
        self,
        store: Store,
        spec: dict[str, Any],
        templates: list[_Template],
        now: datetime,
        rng: random.Random,
        workspaces: Path,
    ) -> None:
        self.store = store
        self.workspaces = workspaces
        self.spec = spec
        self.features = [f["id"] for f in spec["features"]]
        self.checks = {f["id"]: f.get("check") for f in spec["features"]}
        self.rubrics = {f["id"]: f.get("rubric") for f in spec["features"]}
        self.templates = templates
        self.now = now
        self.rng = rng
        self.ids = _Ids(1, 1, 1)
        self.evidence = {
            (f, status): _evidence(self.checks[f], self.rubrics[f], status)
            for f in self.features
            for status in ("pass", "fail")
        }

    def write(self, plans: list[_Plan]) -> None:
        """Write a batch of runs, their rows and their events, in one transaction (run rows first,
        for the foreign keys; their totals once their events are written)."""
        rows = _Rows()
        logs = [_RunLog(self, plan) for plan in plans]
        with self.store.writing() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(_RUN_INSERT, [run.first_row() for run in logs])
            events: list[tuple[Any, ...]] = []
            for run in logs:
                for chunk in run.events(rows):
                    events.extend(chunk)
                    if len(events) >= BATCH_EVENTS // 4:
                        cursor.executemany(EVENT_INSERT, events)
                        events = []
                rows.finished_runs.append(run.finish_row())
            cursor.executemany(EVENT_INSERT, events)
            cursor.executemany(SESSION_INSERT, rows.sessions)
            cursor.executemany(CHECKPOINT_INSERT, rows.checkpoints)
            cursor.executemany(VERDICT_INSERT, rows.verdicts)
            cursor.executemany(APPROVAL_INSERT, rows.approvals)
            cursor.executemany(BREAKER_INSERT, rows.breakers)
            cursor.executemany(_RUN_FINISH, rows.finished_runs)
            cursor.close()


class _RunLog:
    """One run being written: its chain, its clock, its ids and totals."""

    def __init__(self, writer: _Writer, plan: _Plan) -> None:
        self.w = writer
        self.plan = plan
        self.seq = 0
        self.prev = log.GENESIS
        self.start = plan.end - plan.span
        self.step = plan.span / plan.events
        self.chunk: list[tuple[Any, ...]] = []
        self.totals = Totals()
        self.head: int | None = None
        self.head_features: dict[str, str] = {}
        self.last_ts = iso(self.start)
        self.work = 0
        self.reason: str | None = None

    # --- the chain ------------------------------------------------------------------------------

    def _ts(self) -> str:
        return (self.start + self.step * self.seq).isoformat(timespec="microseconds")

    def add(self, kind: str, data: str, session_id: int | None) -> str:
        """Append one event (data already canonical JSON); returns its timestamp."""
        self.seq += 1
        ts = self._ts()
        digest = log.event_hash(self.prev, self.plan.run_id, self.seq, ts, session_id, kind, data)
        self.chunk.append((self.plan.run_id, self.seq, session_id, ts, kind, data, self.prev, digest))
        self.prev = digest
        self.last_ts = ts
        return ts

    def add_json(self, kind: str, data: dict[str, Any], session_id: int | None = None) -> str:
        return self.add(kind, log.canonical_json(data), session_id)

    def take(self) -> list[tuple[Any, ...]]:
        chunk, self.chunk = self.chunk, []
        return chunk

    # --- the story ------------------------------------------------------------------------------

    def events(self, rows: _Rows) -> Iterator[list[tuple[Any, ...]]]:
        plan, w = self.plan, self.w
        data = {"branch": f"longrun/{plan.run_id}", "name": plan.name, "spec_path": None}
        self.add_json("run_created", data | {"state": "draft", "workspace": self.workspace})
        self.checkpoint(
            rows, None, "created", None, [{"sha": _sha(plan.run_id, "init"), "subject": "Initial commit"}]
        )
        self.add_json("started", {"by": "ana"})
        structural = _structural(plan.state, plan.sessions, len(w.features), plan.live)
        work = plan.events - structural
        per_session, extra = divmod(work, plan.sessions)
        for n in range(1, plan.sessions + 1):
            live = plan.live and n == plan.sessions
            self.session(rows, n, per_session + (extra if n == plan.sessions else 0), live)
            if len(self.chunk) >= 10_000:
                yield self.take()
        self.tail(rows)
        assert self.seq == plan.events, (plan.run_id, self.seq, plan.events)
        yield self.take()

    def session(self, rows: _Rows, n: int, work: int, live: bool) -> None:
        w, plan = self.w, self.plan
        session_id = w.ids.session
        w.ids.session += 1
        from_checkpoint = self.head
        due = "started" if n == 1 else "cooldown of 300s after the last session"
        self.add_json("session_due", {"reason": due})
        created = self.add_json(
            "session_created", {"n": n, "from_checkpoint_id": from_checkpoint}, session_id
        )
        pid = 20_000 + (session_id * 7919) % 40_000
        started = self.add_json("session_started", {"n": n, "pid": pid}, session_id)
        self.add_json("context", {"checkpoint_id": from_checkpoint, "bytes": 3104}, session_id)
        totals = Totals()
        half = work // 2
        self.work_events(half, session_id, totals)
        self.checkpoint(rows, session_id, "calls", None, [])
        self.work_events(work - half, session_id, totals)
        started_at = datetime.fromisoformat(started)
        deadline = (self.w.now + TIME_BOX - timedelta(hours=1)) if live else started_at + TIME_BOX
        if live:
            state, ended, reason, settled = SessionState.running, None, None, None
            heartbeat = iso(self.w.now - timedelta(seconds=1))
        else:
            passing = self._passing(n)
            self.checkpoint(rows, session_id, "session_end", _HANDOFF, _commits(plan.run_id, n), passing)
            ended = self.add_json(
                "session_ended", {"n": n, "state": "ended", "reason": "finished"}, session_id
            )
            state, reason, heartbeat = SessionState.ended, "finished", ended
            self.verdicts(rows, session_id, passing)
            settled = self.add_json(
                "session_judged", {"n": n, "progress": True, "newly_passing": []}, session_id
            )
        self.totals.merge(totals)
        rows.sessions.append(
            (
                session_id,
                plan.run_id,
                n,
                state,
                pid,
                created,
                started,
                iso(deadline),
                iso(deadline - WRAP_UP),
                heartbeat,
                ended,
                reason,
                from_checkpoint,
                settled,
                *totals.row(),
            )
        )

    def work_events(self, count: int, session_id: int, totals: Totals) -> None:
        templates = self.w.templates
        for _ in range(count):
            t = templates[self.work % TEMPLATES]
            self.work += 1
            self.add(t.kind, t.data, session_id)
            if t.usage is not None:
                totals.add(t.usage[:4], t.usage[4])

    def _passing(self, n: int) -> dict[str, str]:
        features = self.w.features
        passed = math.floor(len(features) * self.plan.passing_fraction * n / self.plan.sessions + 1e-9)
        if self.plan.passing_fraction == 1.0 and n == self.plan.sessions:
            passed = len(features)
        return {f: ("pass" if k < passed else "fail") for k, f in enumerate(features)}

    def checkpoint(
        self,
        rows: _Rows,
        session_id: int | None,
        reason: str,
        handoff: dict[str, Any] | None,
        commits: list[dict[str, str]],
        features: dict[str, str] | None = None,
    ) -> None:
        w = self.w
        cp_id = w.ids.checkpoint
        w.ids.checkpoint += 1
        commit = _sha(self.plan.run_id, f"cp{cp_id}")
        data = {"checkpoint_id": cp_id, "commit": commit, "reason": reason, "parent_id": self.head}
        ts = self.add_json("checkpoint", data, session_id)
        if features is not None:
            self.head_features = features
        rows.checkpoints.append(
            (
                cp_id,
                self.plan.run_id,
                session_id,
                self.head,
                self.seq,
                commit,
                reason,
                log.canonical_json(handoff) if handoff is not None else None,
                log.canonical_json(self.head_features),
                log.canonical_json(commits),
                self.totals.usd,
                self.totals.tokens,
                ts,
            )
        )
        self.head = cp_id

    def verdicts(self, rows: _Rows, session_id: int, statuses: dict[str, str]) -> None:
        assert self.head is not None
        for feature, status in statuses.items():
            judge = (
                "llm"
                if not self.w.checks[feature]
                else ("command+llm" if self.w.rubrics[feature] else "command")
            )
            evidence = self.w.evidence[(feature, status)]
            data = {
                "checkpoint_id": self.head,
                "evidence": evidence,
                "feature_id": feature,
                "judge": judge,
                "status": status,
            }
            ts = self.add_json("verdict", data)
            rows.verdicts.append(
                (self.plan.run_id, self.head, feature, judge, status, log.canonical_json(evidence), ts)
            )
        judged = {
            "by": "supervisor",
            "checkpoint_id": self.head,
            "errors": [],
            "failing": sorted(f for f, s in statuses.items() if s != "pass"),
            "passing": sorted(f for f, s in statuses.items() if s == "pass"),
            "usd": 0.0021,
        }
        self.add_json("judged", judged, session_id)

    def tail(self, rows: _Rows) -> None:
        plan, w = self.plan, self.w
        state = plan.state
        last_session = w.ids.session - 1
        if state in (RunState.done, RunState.archived):
            self.add_json("run_done", {"checkpoint_id": self.head}, last_session)
            self.reason = "every feature passes at the latest checkpoint"
        elif state == RunState.awaiting_approval:
            request = {
                "tool_use_id": f"toolu_{plan.run_id}",
                "conversation_id": None,
                "checkpoint_id": self.head,
                "tool": "bash",
                "input": {"command": "git push origin HEAD"},
                "action": "ask",
                "reason": "pushes to a remote",
                "rule": {
                    "action": "ask",
                    "reason": "pushes to a remote",
                    "regex": "\\bgit\\s+push\\b",
                    "tool": "bash",
                },
            }
            approval = self.approval(rows, "tool_call", request, last_session)
            self.add_json(
                "paused_for_approval",
                {"approvals": [f"tool_call {approval}"], "checkpoint_id": self.head, "conversation_id": None},
                last_session,
            )
            self.reason = (
                f"`longrun approve {approval}` or `deny {approval}`: "
                "bash `git push origin HEAD` waits (pushes to a remote)"
            )
        elif state == RunState.tripped:
            numbers = {"limit": 3, "sessions_without_progress": 3}
            ts = self.add_json(
                "breaker_tripped", {"breaker": "no_progress_sessions", **numbers}, last_session
            )
            reason = "breaker no_progress_sessions tripped (sessions_without_progress=3, limit=3)"
            rows.breakers.append((plan.run_id, "no_progress_sessions", "open", ts, reason))
            self.approval(rows, "breaker_reset", {"breaker": "no_progress_sessions"}, last_session)
            self.reason = (
                f"breaker no_progress_sessions tripped: reset with `longrun breaker reset {plan.run_id} NAME`"
            )
        elif state == RunState.paused:
            detail = "the next model call would not fit in what is left of budget.usd"
            self.approval(rows, "budget_raise", {"cap": "usd", "detail": detail}, last_session)
            self.add_json("paused", {"by": "ana", "sessions_told_to_wrap_up": []})
            self.reason = "paused by ana"
        elif state == RunState.failed:
            self.reason = f"session {plan.sessions} crashed: its heartbeat stopped"
        elif state == RunState.running:
            self.reason = f"session {plan.sessions} running"
        elif state == RunState.scheduled:
            self.reason = f"session {plan.sessions} ended"

    def approval(self, rows: _Rows, kind: str, request: dict[str, Any], session_id: int) -> int:
        approval = self.w.ids.approval
        self.w.ids.approval += 1
        ts = self.add_json(
            "approval_requested", {"approval_id": approval, "kind": kind, "request": request}, session_id
        )
        rows.approvals.append(
            (
                approval,
                self.plan.run_id,
                session_id,
                kind,
                "pending",
                log.canonical_json(request),
                ts,
                None,
                None,
                None,
            )
        )
        return approval

    @property
    def workspace(self) -> str:
        return str(self.w.workspaces / self.plan.name)

    def first_row(self) -> tuple[Any, ...]:
        plan = self.plan
        spec = {**self.w.spec, "name": plan.name, "workspace": self.workspace}
        created = iso(self.start)
        return (
            plan.run_id,
            plan.name,
            spec["goal"],
            log.canonical_json(spec),
            self.workspace,
            f"longrun/{plan.run_id}",
            str(plan.state),
            created,
            created,
        )

    def finish_row(self) -> tuple[Any, ...]:
        next_at = next_reason = None
        if self.plan.state == RunState.scheduled:
            next_at = iso(self.w.now + timedelta(minutes=self.w.rng.randint(1, 55)))
            next_reason = "cooldown of 300s after the last session"
        totals = self.totals.row()
        return (self.reason, self.last_ts, self.head, next_at, next_reason, *totals, self.plan.run_id)


_HANDOFF = {
    "done": ["top_words strips punctuation", "tests for the empty text"],
    "next": ["reading_time rounding", "README examples"],
    "blockers": [],
    "notes": "All tests but tests/test_reading_time.py pass; see the handoff of the last session.",
}


def _sha(run_id: str, what: str) -> str:
    return hashlib.sha1(f"{run_id}:{what}".encode()).hexdigest()


def _commits(run_id: str, n: int) -> list[dict[str, str]]:
    return [
        {"sha": _sha(run_id, f"s{n}c{k}"), "subject": subject}
        for k, subject in enumerate(("Strip punctuation in top_words", "Test the empty text"))
    ]


def _evidence(check: str | None, rubric: str | None, status: str) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    if check:
        tail = "3 passed in 0.02s" if status == "pass" else "1 failed, 2 passed in 0.03s"
        evidence |= {
            "command": check,
            "exit_code": 0 if status == "pass" else 1,
            "duration_s": 0.41,
            "output_tail": tail,
        }
    if rubric and (status == "pass" or not check):
        evidence |= {
            "rubric": rubric,
            "confidence": 0.9,
            "rationale": "Every criterion is met." if status == "pass" else "One criterion is not met yet.",
            "model": "claude-sonnet-5-5",
        }
    return evidence


def counts(store: Store) -> dict[str, int]:
    """Rows per table (for checking a fill)."""
    with store.reading() as conn:
        return {
            table: int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
            for table in ("run", "session", "checkpoint", "verdict", "approval", "breaker", "event")
        }

"""Writing the big store: each run's log (its hash chain, sessions, checkpoints, verdicts and
how it came to its state) and the rows beside it, a batch of runs per transaction."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.bench.bigstore.payloads import (
    HANDOFF,
    TEMPLATES,
    Template,
    commit_sha,
    session_commits,
    verdict_evidence,
)
from longrun.bench.bigstore.plan import RunPlan, structural_events
from longrun.bench.common import (
    APPROVAL_INSERT,
    BREAKER_INSERT,
    CHECKPOINT_INSERT,
    EVENT_INSERT,
    SESSION_INSERT,
    VERDICT_INSERT,
    Totals,
)
from longrun.store import log
from longrun.store.db import Store
from longrun.store.models import RunState, SessionState, iso

BATCH_EVENTS = 100_000
"""Events written per transaction (a run's events may span several)."""
TIME_BOX = timedelta(hours=5)
WRAP_UP = timedelta(minutes=10)

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


@dataclass
class Ids:
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


class StoreWriter:
    """Writes runs into the store a batch at a time, with what every run shares: the spec's
    features and their evidence, the payload templates, the clock and the next ids."""

    def __init__(
        self,
        store: Store,
        spec: dict[str, Any],
        templates: list[Template],
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
        self.ids = Ids(1, 1, 1)
        self.evidence = {
            (f, status): verdict_evidence(self.checks[f], self.rubrics[f], status)
            for f in self.features
            for status in ("pass", "fail")
        }

    def write(self, plans: list[RunPlan]) -> None:
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
        # The events went in around `log.append`: keep and anchor each run's head as `append` would.
        log.record_heads(self.store, [plan.run_id for plan in plans])


class _RunLog:
    """One run being written: its chain, its clock, its ids and totals."""

    def __init__(self, writer: StoreWriter, plan: RunPlan) -> None:
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

    def _ts(self, ahead: int = 0) -> str:
        """The timestamp of the event `ahead` after the last one written (0: the last's)."""
        return (self.start + self.step * (self.seq + ahead)).isoformat(timespec="microseconds")

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
            rows,
            None,
            "created",
            None,
            [{"sha": commit_sha(plan.run_id, "init"), "subject": "Initial commit"}],
        )
        self.add_json("started", {"by": "ana"})
        structural = structural_events(plan.state, plan.sessions, len(w.features), plan.live)
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
        # The session starts two events from here (created, then started): its time box runs from then.
        started_at = datetime.fromisoformat(self._ts(2))
        deadline = (self.w.now + TIME_BOX - timedelta(hours=1)) if live else started_at + TIME_BOX
        made: dict[str, Any] = {"n": n, "from_checkpoint_id": from_checkpoint}
        made |= {"deadline_at": iso(deadline), "wrap_up_at": iso(deadline - WRAP_UP)}
        created = self.add_json("session_created", made, session_id)
        pid = 20_000 + (session_id * 7919) % 40_000
        started = self.add_json("session_started", {"n": n, "pid": pid}, session_id)
        self.add_json("context", {"checkpoint_id": from_checkpoint, "bytes": 3104}, session_id)
        totals = Totals()
        half = work // 2
        self.work_events(half, session_id, totals)
        self.checkpoint(rows, session_id, "calls", None, [])
        self.work_events(work - half, session_id, totals)
        assert started == iso(started_at), (started, started_at)
        if live:
            state, ended, reason, settled = SessionState.running, None, None, None
            heartbeat = iso(self.w.now - timedelta(seconds=1))
        else:
            passing = self._passing(n)
            self.checkpoint(
                rows, session_id, "session_end", HANDOFF, session_commits(plan.run_id, n), passing
            )
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
        commit = commit_sha(self.plan.run_id, f"cp{cp_id}")
        if features is not None:
            self.head_features = features
        handoff_json = log.canonical_json(handoff) if handoff is not None else None
        commits_json = log.canonical_json(commits)
        data = {"checkpoint_id": cp_id, "commit": commit, "reason": reason, "parent_id": self.head}
        data |= {"spent_usd": self.totals.usd, "tokens": self.totals.tokens, "features": features}
        data |= {
            "handoff_sha256": log.text_digest(handoff_json),
            "commits_sha256": log.text_digest(commits_json),
        }
        ts = self.add_json("checkpoint", data, session_id)
        rows.checkpoints.append(
            (
                cp_id,
                self.plan.run_id,
                session_id,
                self.head,
                self.seq,
                commit,
                reason,
                handoff_json,
                log.canonical_json(self.head_features),
                commits_json,
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

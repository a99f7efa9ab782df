"""One run's log as it is written: its hash chain, head checkpoint and totals, and the rows that
go with its events."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from longrun.bench.common import Totals
from longrun.bench.synth.payloads import WORK, Tool, evidence, judge_name, sayings_json, tool_pool
from longrun.bench.synth.plan import Call, Slot, Tokens
from longrun.bench.synth.sink import Ids, Rows, Sink, stamp
from longrun.bench.synth.story import FEATURES, README, SESSION_STATES, Act
from longrun.scheduler.guards.pricing import Price
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log
from longrun.store.models import SessionState


class LogFull(Exception):
    """The run's log holds the events it was asked for."""


@dataclass
class Live:
    """One session as it is being written."""

    id: int
    n: int
    act: Act
    slot: Slot
    created: datetime
    deadline: datetime
    wrap_up_at: datetime
    from_checkpoint: int | None
    before: dict[str, str]
    """The feature status it started from."""
    from_commit: str
    usages: Iterator[Call]
    """Each model call's tokens and how many tool calls it makes."""
    rng: random.Random
    tools: list[Tool]
    sayings: list[str]
    totals: Totals = field(default_factory=Totals)
    calls: int = 0
    last_checkpoint: datetime | None = None
    wrapped: bool = False
    handoff_due: bool = False
    handoff_written: bool = False
    heartbeat: datetime | None = None
    pid: int = 0


class RunLog:
    """One run's log as it is written: its hash chain, head checkpoint and totals, and the rows
    that go with its events (checkpoints, approvals, the day's spend, the sessions)."""

    def __init__(
        self,
        *,
        sink: Sink,
        ids: Ids,
        rows: Rows,
        seed: int,
        key: str,
        run_id: str,
        spec: RunSpec,
        price: Price,
        box: timedelta,
        wrap: timedelta,
    ) -> None:
        self.sink = sink
        self.ids = ids
        self.rows = rows
        self.seed = seed
        self.key = key
        self.run_id = run_id
        self.spec = spec
        self.price = price
        self.box = box
        self.wrap = wrap
        self.branch = f"longrun/{run_id}"
        self.seq = 0
        self.prev = log.GENESIS
        self.limit: int | None = None
        self.last_ts = ""
        self.totals = Totals()
        self.head: int | None = None
        self.head_commit = ""
        self.head_features: dict[str, str] = {}
        self.warn_at: float | None = None
        self.warned_at: datetime | None = None
        self.progress: list[bool] = []
        self.breaker_open = False
        self.half_open = False
        self.pending: dict[str, int] = {}
        """Approvals waiting for a person, by what they are about."""
        self.conversation: tuple[int, str, int] | None = None
        """The paused conversation the next session goes on from: its id, the waiting call and
        the approval that decides it."""
        self.fork_hook: Callable[[Live], None] | None = None
        """Called after the session whose act says `fork` (the fork is written by its own writer)."""
        self.fork_of: tuple[int, str] | None = None
        """For a fork: the parent's checkpoint and commit it starts from."""
        self.moments: dict[str, datetime] = {}
        self.rng = random.Random(f"synth:{seed}:{key}")
        self.pools = {f: tool_pool(run_id, WORK[f]) for f in FEATURES}
        self.sayings = {f: sayings_json(WORK[f]) for f in FEATURES}
        self.evidence = {
            (f, s): log.canonical_json(evidence(f, s, spec)) for f in FEATURES for s in ("pass", "fail")
        }
        self.judges = {(f, s): judge_name(f, s, spec) for f in FEATURES for s in ("pass", "fail")}
        self.model_json = json.dumps(spec.worker.model)
        self.max_tokens = spec.worker.max_tokens

    # --- the chain ------------------------------------------------------------------------------

    def add(self, kind: str, data: str, session_id: int | None, ts: datetime) -> int:
        """Append one event (its data already canonical JSON); returns its seq."""
        if self.limit is not None and self.seq >= self.limit:
            raise LogFull
        self.seq += 1
        at = stamp(ts)
        digest = log.event_hash(self.prev, self.run_id, self.seq, at, session_id, kind, data)
        self.sink.event((self.run_id, self.seq, session_id, at, kind, data, self.prev, digest))
        self.prev = digest
        self.last_ts = at
        return self.seq

    def add_json(self, kind: str, data: dict[str, Any], session_id: int | None, ts: datetime) -> int:
        return self.add(kind, log.canonical_json(data), session_id, ts)

    # --- rows -----------------------------------------------------------------------------------

    def charge(self, u: Tokens, usd: float, at: str, session: Live | None) -> None:
        self.totals.add(u, usd)
        if session is not None:
            session.totals.add(u, usd)
        day = self.rows.spend_days.get((self.run_id, at[:10]))
        if day is None:
            day = self.rows.spend_days[(self.run_id, at[:10])] = Totals()
        day.add(u, usd)

    def checkpoint(
        self,
        ts: datetime,
        session: Live | None,
        reason: str,
        handoff: dict[str, Any] | None = None,
        *,
        commit: str | None = None,
        first: bool = False,
    ) -> int:
        cp = self.ids.take("checkpoint")
        sha = commit or hashlib.sha1(f"{self.run_id}:{cp}".encode()).hexdigest()
        parent = None if first else self.head
        session_id = session.id if session is not None else None
        commits = []
        if session is not None and reason in ("calls", "timer", "handoff", "session_end"):
            subject = f"{WORK[self.focus(session)].function}: handle the empty text"
            commits = [{"sha": hashlib.sha1(f"{sha}:work".encode()).hexdigest(), "subject": subject}]
        handoff_json = log.canonical_json(handoff) if handoff is not None else None
        commits_json = log.canonical_json(commits)
        # What a real checkpoint event records, so `longrun verify` checks these rows in full.
        data = {"checkpoint_id": cp, "commit": sha, "parent_id": parent, "reason": reason}
        data |= {"spent_usd": self.totals.usd, "tokens": self.totals.tokens}
        data |= {
            "handoff_sha256": log.text_digest(handoff_json),
            "commits_sha256": log.text_digest(commits_json),
        }
        seq = self.add_json("checkpoint", data, session_id, ts)
        self.rows.checkpoints[cp] = [
            cp,
            self.run_id,
            session_id,
            parent,
            seq,
            sha,
            reason,
            handoff_json,
            log.canonical_json(self.head_features),
            commits_json,
            self.totals.usd,
            self.totals.tokens,
            stamp(ts),
        ]
        self.head, self.head_commit = cp, sha
        if session is not None:
            session.calls = 0
            session.last_checkpoint = ts
        return cp

    def approval(self, kind: str, request: dict[str, Any], session_id: int | None, ts: datetime) -> int:
        approval = self.ids.take("approval")
        data = {"approval_id": approval, "kind": kind, "request": request}
        self.add_json("approval_requested", data, session_id, ts)
        self.rows.approvals[approval] = [
            approval,
            self.run_id,
            session_id,
            kind,
            "pending",
            log.canonical_json(request),
            stamp(ts),
            None,
            None,
            None,
        ]
        return approval

    def decide(self, approval: int, state: str, by: str, comment: str, ts: datetime) -> None:
        row = self.rows.approvals[approval]
        data = {"approval_id": approval, "by": by, "comment": comment, "state": state}
        self.add_json("approval_decided", data, row[2], ts)
        row[4], row[7], row[8], row[9] = state, by, stamp(ts), comment

    def focus(self, session: Live) -> str:
        """The feature the session works on: the first one not passing when it started."""
        return next((f for f in FEATURES if session.before.get(f) != "pass"), README)

    def created(self, ts: datetime, name: str, workspace: str, state: str) -> None:
        data = {
            "branch": self.branch,
            "name": name,
            "spec_path": None,
            "state": state,
            "workspace": workspace,
        }
        self.add_json("run_created", data, None, ts)

    def context_text(self, session: Live) -> str:
        status = "\n".join(f"- {f}: {session.before.get(f, 'unjudged')}" for f in FEATURES)
        return (
            f"# Goal\n{self.spec.goal.strip()}\n\n# Done-condition\n{status}\n\n"
            f"# Last handoff\nNext: {WORK[self.focus(session)].function}, then the README examples.\n\n"
            f"# Budget\n${self.totals.usd:.2f} of ${self.spec.budget.usd:.2f} spent; "
            f"this is session {session.n}."
        )

    def ended(self, session: Live, state: SessionState, reason: str, data: dict[str, Any]) -> None:
        body = {"n": session.n, "reason": reason, "state": str(state)} | data
        self.add_json("session_ended", body, session.id, session.slot.end)

    def session_row(self, session: Live, ended: str | None, reason: str | None, settled: str | None) -> None:
        act = session.act
        state = SESSION_STATES.get(act.ending, SessionState.ended)
        heartbeat = session.heartbeat or session.created
        self.rows.sessions.append(
            (
                session.id,
                self.run_id,
                session.n,
                str(state),
                session.pid,
                stamp(session.created),
                stamp(session.slot.due + timedelta(seconds=1.5)),
                stamp(session.deadline),
                stamp(session.wrap_up_at),
                stamp(heartbeat),
                ended,
                reason,
                session.from_checkpoint,
                settled,
                *session.totals.row(),
            )
        )

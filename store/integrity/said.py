"""What the log says of a run's rows, gathered on the chain walk."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from longrun.store import log
from longrun.store.integrity.values import digest

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


WATCHED = frozenset(
    {
        "run_created",
        "forked",
        "budget_set",
        "checkpoint",
        "rewound",
        "verdict",
        "approval_requested",
        "approval_decided",
        "session_created",
        "session_started",
        "session_ended",
        "model_call",
        "judge_call",
    }
)
"""The event kinds the audit reads the rows' records from."""


@dataclass
class Event:
    seq: int
    ts: str
    session_id: int | None
    data: dict[str, Any]


@dataclass
class Totals:
    usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    calls: int = 0

    def add(self, usage: dict[str, Any]) -> None:
        self.usd += float(usage.get("usd") or 0.0)
        for k in TOKEN_KINDS:
            self.tokens[k] += int(usage.get(k) or 0)
        self.calls += 1

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


@dataclass
class CheckpointSaid:
    event: Event
    spent_usd: float
    tokens: int
    complete: bool
    """Its event is a schema-3 one, with spend, tokens and digests of its own."""


@dataclass
class VerdictSaid:
    event: Event
    digest: str


class Said:
    """What the log says of the run's rows, gathered on the chain walk (an observer of
    `log.verify_chain`): the events that made each row, the spend the calls add up to, the
    feature status each checkpoint's verdicts fold to, the budget and the head checkpoint."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.created: Event | None = None
        self.parent_run_id: str | None = None
        self.budget: dict[str, Any] | None = None
        self.budget_complete = False
        self.head_checkpoint: int | None = None
        self.head_said_by: int | None = None
        self.calls = Totals()
        self.session_calls: dict[int, Totals] = {}
        self.checkpoints: dict[int, CheckpointSaid] = {}
        self.features: dict[int, dict[str, str]] = {}
        self.verdicts_by_id: dict[int, VerdictSaid] = {}
        self.verdicts_unnamed: dict[tuple[int, str], deque[VerdictSaid]] = {}
        self.asked: dict[int, Event] = {}
        self.decided: dict[int, Event] = {}
        self.sessions: dict[str, dict[int, Event]] = {"created": {}, "started": {}, "ended": {}}
        self.unreadable = 0
        self.old_checkpoints = 0

    def __call__(self, seq: int, session_id: int | None, ts: str, kind: str, data: str) -> None:
        if kind not in WATCHED:
            return
        try:
            parsed = json.loads(data)
            if not isinstance(parsed, dict):
                raise TypeError("not an object")
            getattr(self, f"_on_{kind}")(Event(seq, ts, session_id, parsed))
        except (ValueError, TypeError, KeyError, AttributeError):
            self.unreadable += 1  # an edited event: the chain says so; its row is not compared

    def notes(self) -> list[str]:
        out = []
        if self.unreadable:
            out.append(f"{self.unreadable} events could not be read as their kind")
        if self.old_checkpoints:
            out.append(
                f"{self.old_checkpoints} checkpoints made before schema 3: spend checked against the "
                "calls before them, handoff and commit list not checked"
            )
        return out

    def _on_run_created(self, e: Event) -> None:
        self.created = e
        if "budget" in e.data and isinstance(e.data["budget"], dict):
            self.budget = dict(e.data["budget"])
            self.budget_complete = True

    def _on_forked(self, e: Event) -> None:
        self.parent_run_id = e.data.get("parent_run_id")

    def _on_budget_set(self, e: Event) -> None:
        to = e.data.get("to") or {}
        if isinstance(to, dict):
            self.budget = {**(self.budget or {}), **to}

    def _on_checkpoint(self, e: Event) -> None:
        cp = int(e.data["checkpoint_id"])
        parent = e.data.get("parent_id")
        complete = "spent_usd" in e.data
        if isinstance(e.data.get("features"), dict):
            features = dict(e.data["features"])
        else:
            features = dict(self.features.get(parent, {})) if parent is not None else {}
        self.features[cp] = features
        if complete:
            spent, tokens = float(e.data["spent_usd"]), int(e.data["tokens"])
        else:
            self.old_checkpoints += 1
            spent, tokens = self.calls.usd, self.calls.total_tokens
        self.checkpoints[cp] = CheckpointSaid(e, spent, tokens, complete)
        self.head_checkpoint, self.head_said_by = cp, e.seq

    def _on_rewound(self, e: Event) -> None:
        self.head_checkpoint, self.head_said_by = int(e.data["to"]), e.seq

    def _on_verdict(self, e: Event) -> None:
        cp, feature = int(e.data["checkpoint_id"]), str(e.data["feature_id"])
        self.features.setdefault(cp, {})[feature] = e.data["status"]
        said = VerdictSaid(e, digest(log.canonical_json(e.data.get("evidence"))))
        if "verdict_id" in e.data:
            self.verdicts_by_id[int(e.data["verdict_id"])] = said
        else:
            self.verdicts_unnamed.setdefault((cp, feature), deque()).append(said)

    def _on_approval_requested(self, e: Event) -> None:
        self.asked.setdefault(int(e.data["approval_id"]), e)

    def _on_approval_decided(self, e: Event) -> None:
        self.decided.setdefault(int(e.data["approval_id"]), e)

    def _on_session_created(self, e: Event) -> None:
        if e.session_id is not None:
            self.sessions["created"].setdefault(e.session_id, e)

    def _on_session_started(self, e: Event) -> None:
        if e.session_id is not None:
            self.sessions["started"].setdefault(e.session_id, e)

    def _on_session_ended(self, e: Event) -> None:
        if e.session_id is not None:
            self.sessions["ended"].setdefault(e.session_id, e)

    def _on_model_call(self, e: Event) -> None:
        usage = e.data.get("usage") or {}
        self.calls.add(usage)
        if e.session_id is not None:
            self.session_calls.setdefault(e.session_id, Totals()).add(usage)

    def _on_judge_call(self, e: Event) -> None:
        self.calls.add(e.data.get("usage") or {})  # a judge's call is the run's spend, not its session's

"""Rehydration: what a new session is told, built from stored data only.

`build_resume_context` is pure and deterministic: the same stored inputs give the same text.
Its size is capped by construction: every section is cut to a byte budget and the whole text
to `CONTEXT_TOKEN_CAP` bytes. A token is never shorter than one byte of UTF-8, so the text can
never be more than `CONTEXT_TOKEN_CAP` tokens, whatever the length of the run's history.
`load_resume_inputs` gathers the inputs with a bounded number of small queries: it never reads
the event log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from longrun.scheduler.spec.durations import parse_duration
from longrun.scheduler.spec.keys import RATCHET
from longrun.store.db import Store
from longrun.store.runs import (
    CheckpointView,
    RunView,
    SessionView,
    VerdictView,
    checkpoint_ancestors,
    get_checkpoint,
    get_session,
    recent_decisions,
    session_count,
    verdicts_at,
)

CONTEXT_TOKEN_CAP = 16_000
RECENT_COMMITS = 12
ANCESTORS_READ = 8

_SECTION_BYTES = {
    "goal": 3_000,
    "features": 6_000,
    "handoff": 3_500,
    "commits": 1_500,
    "budget": 800,
    "decisions": 2_000,
}
RECENT_DECISIONS = 5
RATCHET_DESCRIPTION = (
    "The tests never go down: no test file deleted and no fewer tests collected than at the best "
    "checkpoint so far (only a person can accept fewer)."
)


INITIALIZER_TASK = """\
## This session: propose the done-condition
The run has no done-condition yet. Read the workspace and the goal, then call
`propose_features` once with the list of features that, all passing, mean the goal is met.
Each feature has an `id` (lowercase, like "api-tests"), a one-sentence `description`, and a
`check` (a shell command run in the workspace that exits 0 when the feature is done) and/or a
`rubric` (what a separate reviewer model must see to pass it). Prefer checks that run real
tests. Do not start the work itself: a person reviews the list before any coding session."""


@dataclass(frozen=True)
class FeatureState:
    id: str
    description: str
    check: str | None
    rubric: str | None
    status: str
    evidence: str = ""


@dataclass(frozen=True)
class ResumeInputs:
    run_id: str
    run_name: str
    goal: str
    session_n: int
    checkpoint_id: int | None
    checkpoint_commit: str | None
    handoff: dict[str, Any] | None
    handoff_session: int | None
    features: list[FeatureState] = field(default_factory=list)
    recent_commits: list[dict[str, str]] = field(default_factory=list)
    spent_usd: float = 0.0
    budget_usd: float | None = None
    per_session_usd: float | None = None
    tokens_used: int = 0
    budget_tokens: int | None = None
    time_box: timedelta = timedelta(hours=5)
    wrap_up: timedelta = timedelta(minutes=10)
    initializer: bool = False
    """The run has no done-condition yet: this session proposes one."""
    decisions: list[str] = field(default_factory=list)
    """What people decided lately about the run's approvals, newest first, one line each."""


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, marking the cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    marker = " […]"
    return data[: limit - len(marker.encode())].decode(errors="ignore") + marker


def _minutes(td: timedelta) -> str:
    total = int(td.total_seconds())
    if total >= 3600:
        return f"{total // 3600}h{(total % 3600) // 60:02d}m"
    if total >= 60:
        return f"{total // 60}m"
    return f"{total}s"


def build_resume_context(inputs: ResumeInputs) -> str:
    """The text a session starts from: goal, done-condition with latest verdicts, last handoff,
    recent commits, and the budget and time left."""
    parts: list[str] = []
    parts.append(f"# Run {inputs.run_name} ({inputs.run_id}), session {inputs.session_n}")
    if inputs.checkpoint_id is None:
        parts.append("This is the first session of the run: nothing has been done yet.")
    else:
        commit = (inputs.checkpoint_commit or "")[:12]
        parts.append(f"You resume from checkpoint {inputs.checkpoint_id} (workspace commit {commit}).")

    parts.append(_cut("## Goal\n" + inputs.goal.strip(), _SECTION_BYTES["goal"]))
    if inputs.features:
        parts.append(_cut(_features_section(inputs.features), _SECTION_BYTES["features"]))
    if inputs.initializer:
        parts.append(INITIALIZER_TASK)
    if inputs.decisions:
        lines = ["## Decisions by the people supervising this run (newest first)"]
        lines.extend(f"- {_cut(line, 500)}" for line in inputs.decisions)
        parts.append(_cut("\n".join(lines), _SECTION_BYTES["decisions"]))
    if inputs.handoff:
        parts.append(
            _cut(_handoff_section(inputs.handoff, inputs.handoff_session), _SECTION_BYTES["handoff"])
        )
    elif inputs.checkpoint_id is not None:
        parts.append(
            "## Handoff\nThe previous session left no handoff (it may have crashed or run out of time)."
        )
    if inputs.recent_commits:
        lines = ["## Recent commits in the workspace (newest first)"]
        lines.extend(
            f"- {c['sha'][:10]} {_cut(c['subject'], 120)}" for c in inputs.recent_commits[:RECENT_COMMITS]
        )
        parts.append(_cut("\n".join(lines), _SECTION_BYTES["commits"]))
    parts.append(_cut(_budget_section(inputs), _SECTION_BYTES["budget"]))
    return _cut("\n\n".join(parts), CONTEXT_TOKEN_CAP)


def _features_section(features: Sequence[FeatureState]) -> str:
    lines = ["## Done-condition (decided by the judge, not by you)"]
    for f in features:
        how = []
        if f.check:
            how.append(f"check: `{_cut(f.check, 200)}`")
        if f.rubric:
            how.append(f"rubric: {_cut(f.rubric, 300)}")
        lines.append(f"- [{f.status}] {f.id}: {_cut(f.description, 300)} ({'; '.join(how)})")
        if f.evidence and f.status != "pass":
            lines.append("  last evidence: " + _cut(f.evidence.strip().replace("\n", "\n  "), 600))
    return "\n".join(lines)


def _handoff_section(handoff: dict[str, Any], session_n: int | None) -> str:
    # A handoff with no session was recorded from outside one, for work done by hand.
    if session_n:
        lines = [f"## Handoff from session {session_n}"]
    else:
        by = f" (by {handoff['by']})" if handoff.get("by") else ""
        lines = [f"## Handoff left outside a session{by}"]
    for key in ("done", "next", "blockers"):
        items = handoff.get(key) or []
        if items:
            lines.append(f"{key.capitalize()}:")
            lines.extend(f"- {_cut(str(item), 400)}" for item in items)
    if handoff.get("notes"):
        lines.append("Notes: " + _cut(str(handoff["notes"]), 1500))
    return "\n".join(lines)


def _budget_section(inputs: ResumeInputs) -> str:
    budget = [f"## Budget and time\nSpent so far: ${inputs.spent_usd:.4f}"]
    if inputs.budget_usd is not None:
        left = max(inputs.budget_usd - inputs.spent_usd, 0)
        budget.append(f"Run budget left: ${left:.4f} of ${inputs.budget_usd:.2f}")
    if inputs.per_session_usd is not None:
        budget.append(f"This session may spend at most ${inputs.per_session_usd:.2f}")
    if inputs.budget_tokens is not None:
        budget.append(
            f"Tokens left: {max(inputs.budget_tokens - inputs.tokens_used, 0):,} of {inputs.budget_tokens:,}"
        )
    budget.append(
        f"This session has {_minutes(inputs.time_box)}; you will be told to wrap up "
        f"{_minutes(inputs.wrap_up)} before the end. Call `handoff` before you stop."
    )
    return "\n".join(budget)


def context_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_resume_inputs(
    store: Store, run: RunView, session: SessionView, checkpoint_id: int | None
) -> ResumeInputs:
    """Everything `build_resume_context` needs, read with bounded queries (no log scan)."""
    return _inputs(store, run, session.n, session.deadline_at - session.created_at, checkpoint_id)


def next_context(store: Store, run: RunView, checkpoint_id: int | None = None) -> str:
    """What the run's next session would be told if it started now from `checkpoint_id` (a
    checkpoint of the run, as a resume from it does), else from the run's head."""
    if checkpoint_id is not None:
        get_checkpoint(store, checkpoint_id, run.id)  # one of this run's, or a one-line error
    time_box = parse_duration(run.spec.get("session", {}).get("time_box", "5h"))
    n = session_count(store, run.id) + 1
    start = checkpoint_id if checkpoint_id is not None else run.head_checkpoint_id
    return build_resume_context(_inputs(store, run, n, time_box, start))


def _inputs(
    store: Store, run: RunView, session_n: int, time_box: timedelta, checkpoint_id: int | None
) -> ResumeInputs:
    spec = run.spec
    chain: list[CheckpointView] = (
        checkpoint_ancestors(store, checkpoint_id, ANCESTORS_READ) if checkpoint_id else []
    )
    checkpoint = chain[0] if chain else None
    handoff_cp = next((cp for cp in chain if cp.handoff), None)
    commits: list[dict[str, str]] = []
    for cp in chain:
        commits.extend(cp.commits)
        if len(commits) >= RECENT_COMMITS:
            break
    # Status and evidence come from the resumed line of history only (never from a branch that
    # was rewound away), read from the bounded chain of ancestors already in hand.
    by_checkpoint = verdicts_at(store, [cp.id for cp in chain])
    newest: dict[str, VerdictView] = {}
    for cp in chain:  # newest first
        for verdict in reversed(by_checkpoint[cp.id]):
            newest.setdefault(verdict.feature_id, verdict)
    features = []
    for f in spec.get("features", []):
        status = checkpoint.features.get(f["id"], "unjudged") if checkpoint else "unjudged"
        found = newest.get(f["id"])
        evidence = _evidence_text(found) if found is not None and found.status != "pass" else ""
        features.append(
            FeatureState(f["id"], f["description"], f.get("check"), f.get("rubric"), status, evidence)
        )
    ratchet = checkpoint.features.get(RATCHET) if checkpoint else None
    if ratchet is not None and ratchet != "pass":
        found = newest.get(RATCHET)
        evidence = _evidence_text(found) if found else ""
        features.append(FeatureState(RATCHET, RATCHET_DESCRIPTION, None, None, ratchet, evidence))
    decisions = [
        f"{a.kind.replace('_', ' ')} {a.state} by {a.decided_by}" + (f": {a.comment}" if a.comment else "")
        for a in recent_decisions(store, run.id, RECENT_DECISIONS)
    ]
    budget = spec.get("budget", {})
    sess = spec.get("session", {})

    return ResumeInputs(
        run_id=run.id,
        run_name=run.name,
        goal=run.goal,
        session_n=session_n,
        checkpoint_id=checkpoint.id if checkpoint else None,
        checkpoint_commit=checkpoint.commit if checkpoint else None,
        handoff=handoff_cp.handoff if handoff_cp else None,
        handoff_session=_session_n_of(store, handoff_cp) if handoff_cp else None,
        features=features,
        recent_commits=commits[:RECENT_COMMITS],
        spent_usd=run.usage.usd,
        budget_usd=budget.get("usd"),
        per_session_usd=budget.get("per_session_usd"),
        tokens_used=run.usage.tokens,
        budget_tokens=budget.get("tokens"),
        time_box=time_box,
        wrap_up=parse_duration(sess.get("wrap_up", "10m")),
        initializer=not spec.get("features"),
        decisions=decisions,
    )


def _evidence_text(verdict: VerdictView) -> str:
    """What a failing verdict shows the next session: the check's output, the judge's reasons."""
    e = verdict.evidence
    parts = [str(e[k]) for k in ("summary", "output_tail", "rationale", "error") if e.get(k)]
    return "\n".join(parts)


def _session_n_of(store: Store, cp: CheckpointView) -> int | None:
    if cp.session_id is None:
        return None
    return get_session(store, cp.session_id).n

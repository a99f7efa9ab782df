"""The judge: runs the evaluators on one checkpoint of a run and stores their verdicts.

It runs after every session ends (in the supervisor, never in the worker's process) and on
demand (`longrun judge RUN [--checkpoint C]`). For each feature it runs the command check, and
the rubric judge when the feature has a rubric; a feature with both passes only when both do.
The test ratchet is judged as one more item, `ratchet`. Every verdict is stored with its
evidence, per feature per checkpoint, and as an event. The worker's own claims (its handoff,
its messages, `.longrun/features.json`) are never read.

The head checkpoint of a run with no session running is judged in the workspace itself (it holds
exactly that checkpoint, build artefacts included); any other checkpoint in a temporary worktree
of its commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from longrun.evaluators import ratchet as ratchet_eval
from longrun.evaluators.command import CheckVerdict, run_check
from longrun.evaluators.llm import (
    CheckOutput,
    RubricVerdict,
)
from longrun.scheduler.guards import policy
from longrun.scheduler.judging.features import features_file_change
from longrun.scheduler.judging.rubric import _carried, _rubric_input, _RubricJudge
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.spec.keys import RATCHET
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.models import RunState
from longrun.store.runs import ApprovalView, CheckpointView, RunView, VerdictView
from longrun.store.runs.requests import DoneConditionRequest, QuestionRequest, ToolCallRequest

if TYPE_CHECKING:  # the SDK is imported when the judge calls a model: it takes a second to import
    pass

ANCESTORS_SEARCHED = 500
"""How far back the judge looks for a feature's last pass and for the ratchet's best measure."""


@dataclass(frozen=True)
class Judgement:
    """What the judge found at one checkpoint."""

    run_id: str
    checkpoint_id: int
    statuses: dict[str, str]
    """Feature id (and `ratchet`, when judged) → pass, fail or error."""
    features: tuple[str, ...]
    """The done-condition's feature ids, in order."""
    ratchet: VerdictView | None = None
    changed_copy: str | None = None
    """How the worker changed `.longrun/features.json`, when it did."""
    out_of_budget: bool = False
    """A rubric could not be judged because the judge's share of the budget is spent."""
    usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def all_pass(self) -> bool:
        """Every feature passes, and the ratchet does not fail: the done-condition holds."""
        if not self.features:
            return False
        items = [*self.features, *([RATCHET] if self.ratchet is not None else [])]
        return all(self.statuses.get(f) == "pass" for f in items)

    @property
    def failing(self) -> list[str]:
        return [f for f, status in self.statuses.items() if status != "pass"]


def judge_checkpoint(
    store: Store,
    ref: str,
    checkpoint_id: int | None = None,
    *,
    session_id: int | None = None,
    by: str = "supervisor",
) -> Judgement:
    """Judge a checkpoint of a run (its head by default) and store the verdicts."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    target = checkpoint_id if checkpoint_id is not None else run.head_checkpoint_id
    if target is None:
        raise LongrunError(f"run {run.name} ({run.id}) has no checkpoint to judge yet")
    cp = runs.get_checkpoint(store, target, run.id)
    live = any(not s.is_final for s in runs.list_sessions(store, run.id))
    in_place = cp.id == run.head_checkpoint_id and not live
    changed = _check_copy(store, run, session_id) if in_place else None
    ancestors = runs.checkpoint_ancestors(store, cp.id, ANCESTORS_SEARCHED)
    with _tree_at(run, cp, in_place) as tree:
        verdicts, usd, out_of_budget = _judge_features(store, run, spec, cp, ancestors, tree, session_id)
        ratchet = _judge_ratchet(store, run, spec, cp, ancestors, tree)
    if ratchet is not None:
        verdicts.append(ratchet)
    if verdicts:
        runs.add_verdicts(store, run.id, cp.id, verdicts)
    statuses = {v.feature_id: v.status for v in verdicts}
    log.record(
        store,
        run.id,
        "judged",
        {
            "checkpoint_id": cp.id,
            "by": by,
            "passing": sorted(f for f, s in statuses.items() if s == "pass"),
            "failing": sorted(f for f, s in statuses.items() if s == "fail"),
            "errors": sorted(f for f, s in statuses.items() if s == "error"),
            "usd": round(usd, 6),
        },
        session_id=session_id,
    )
    return Judgement(
        run.id,
        cp.id,
        statuses,
        tuple(f.id for f in spec.features),
        ratchet=ratchet,
        changed_copy=changed,
        out_of_budget=out_of_budget,
        usd=usd,
    )


def _check_copy(store: Store, run: RunView, session_id: int | None) -> str | None:
    """Flag a change the worker made to its read-only copy of the done-condition."""
    written = log.latest_event(store, run.id, "features_file")
    if written is None:
        return None
    change = features_file_change(Path(run.workspace), written.data["sha256"])
    if change is not None:
        log.record(
            store,
            run.id,
            "features_file_changed",
            {
                "flagged": True,
                "change": change,
                "path": written.data.get("path"),
                "detail": "the worker's copy of the done-condition was "
                f"{change}; it is never read, and the judge's verdicts stand",
            },
            session_id=written.session_id or session_id,
        )
    return change


@contextmanager
def _tree_at(run: RunView, cp: CheckpointView, in_place: bool) -> Iterator[Path]:
    if in_place:
        yield Path(run.workspace)
    else:
        with ws.detached_copy(Path(run.workspace), cp.commit) as folder:
            yield folder


def _judge_features(
    store: Store,
    run: RunView,
    spec: RunSpec,
    cp: CheckpointView,
    ancestors: list[CheckpointView],
    tree: Path,
    session_id: int | None,
) -> tuple[list[VerdictView], float, bool]:
    checks: dict[str, CheckVerdict] = {}
    for feature in spec.features:
        if feature.check:
            checks[feature.id] = run_check(feature.id, feature.check, tree, feature.timeout.total_seconds())
    outputs = [
        CheckOutput(
            f.id, f.check or "", checks[f.id].status, str(checks[f.id].evidence.get("output_tail", ""))
        )
        for f in spec.features
        if f.id in checks
    ]
    rubrics = [f for f in spec.features if f.rubric and checks.get(f.id, _PASSED).status == "pass"]
    judged: dict[str, RubricVerdict | VerdictView] = {}
    usd = 0.0
    out_of_budget = False
    if rubrics:
        with _RubricJudge(store, run, spec, session_id) as judge:
            for feature in rubrics:
                item, passed_at = _rubric_input(run, spec, feature, cp, ancestors, outputs)
                if passed_at is not None and not item.diff:
                    judged[feature.id] = _carried(feature, cp, passed_at)
                    continue
                verdict, cost, broke = judge.judge(feature, cp, item)
                judged[feature.id] = verdict
                usd += cost
                out_of_budget = out_of_budget or broke
    verdicts = []
    for feature in spec.features:
        check = checks.get(feature.id)
        rubric = judged.get(feature.id)
        if check is not None and rubric is None:
            evidence = dict(check.evidence)
            if feature.rubric:
                evidence["rubric"] = feature.rubric
                evidence["rubric_skipped"] = f"not judged: the check did not pass ({check.status})"
            verdicts.append(VerdictView(feature.id, cp.id, "command", check.status, evidence))
        elif check is None and rubric is not None:
            verdicts.append(VerdictView(feature.id, cp.id, "llm", rubric.status, rubric.evidence))
        elif check is not None and rubric is not None:
            status = rubric.status  # the check passed, or the rubric would not have been judged
            verdicts.append(
                VerdictView(feature.id, cp.id, "command+llm", status, {**check.evidence, **rubric.evidence})
            )
    return verdicts, usd, out_of_budget


_PASSED = CheckVerdict("", "pass")


def _judge_ratchet(
    store: Store, run: RunView, spec: RunSpec, cp: CheckpointView, ancestors: list[CheckpointView], tree: Path
) -> VerdictView | None:
    """The ratchet's verdict: tests never go down against the best checkpoint so far (since the
    last time a person accepted fewer). None when there are no tests and never were."""
    settings = spec.judge.ratchet
    if not settings.enabled:
        return None
    collect = None if settings.collect == "none" else settings.collect
    patterns = settings.tests or ratchet_eval.DEFAULT_TEST_PATTERNS
    now = ratchet_eval.measure(tree, patterns, collect, settings.timeout.total_seconds())
    earlier = [c for c in ancestors if c.id != cp.id]
    found = runs.verdicts_at(store, [c.id for c in earlier])
    candidates: list[tuple[str, ratchet_eval.TestMeasure]] = []
    for c in earlier:  # newest first
        mine = [v for v in found[c.id] if v.feature_id == RATCHET]
        if not mine:
            continue
        latest = mine[-1]
        if "measure" in latest.evidence and latest.status == "pass":  # a failed measure is no baseline
            candidates.append(
                (f"checkpoint {c.id}", ratchet_eval.TestMeasure.from_json(latest.evidence["measure"]))
            )
        if latest.evidence.get("accepted_by"):
            break  # a person accepted this checkpoint's tests: nothing before it counts
    if not candidates and earlier:
        # No measure on this line yet: the run's starting point is the first baseline.
        first = earlier[-1]
        with ws.detached_copy(Path(run.workspace), first.commit) as folder:
            start = ratchet_eval.measure(folder, patterns, collect, settings.timeout.total_seconds())
        if start.files or start.collected:
            start_verdict = ratchet_eval.compare(start, None)
            runs.add_verdicts(
                store,
                run.id,
                first.id,
                [VerdictView(RATCHET, first.id, "ratchet", start_verdict.status, start_verdict.evidence)],
            )
            candidates.append((f"checkpoint {first.id}", start))
    baseline = ratchet_eval.best(candidates)
    if baseline is None and not now.files and not now.collected:
        return None
    verdict = ratchet_eval.compare(now, baseline[1] if baseline else None, baseline[0] if baseline else None)
    return VerdictView(RATCHET, cp.id, "ratchet", verdict.status, verdict.evidence)


def apply_judgement(
    conn: Connection, store: Store, run: RunView, spec: RunSpec, judgement: Judgement, session_id: int | None
) -> str | None:
    """Set the run's state when the judgement decides it, in the caller's transaction, and return
    the state set; None leaves the run to its schedule.

    Done needs every feature to pass at the checkpoint (and the ratchet not to fail); with
    `[approvals] sign_off` it waits for a person first. A proposed done-condition, a ratchet that
    failed, and a judge out of budget each wait for a person too.
    """
    pending = runs.list_approvals(store, run.id, state="pending")
    kinds = {a.kind for a in pending}
    waiting = [a for a in pending if a.kind in ("tool_call", "question")]
    if waiting:
        return _wait(conn, run.id, waiting_reason(waiting))
    proposed = next((a for a in pending if a.kind == "done_condition"), None)
    if proposed is not None:
        asks = proposed.asks
        count = len(asks.features) if isinstance(asks, DoneConditionRequest) else 0
        reason = (
            f"the worker proposed a done-condition of {count} features: approve it with "
            f"`longrun approve {proposed.id}` or edit it with `longrun features edit {run.id}`"
        )
        return _wait(conn, run.id, reason)
    if judgement.all_pass:
        if not spec.approvals.sign_off:
            runs.set_run_state(conn, run.id, RunState.done, "every feature passes at the latest checkpoint")
            runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
            log.append(
                conn, run.id, "run_done", {"checkpoint_id": judgement.checkpoint_id}, session_id=session_id
            )
            return RunState.done
        approval = next((a.id for a in pending if a.kind == "sign_off"), None)
        if approval is None:
            request = {"checkpoint_id": judgement.checkpoint_id, "features": list(judgement.features)}
            approval = runs.add_approval(conn, run.id, "sign_off", request, session_id)
        reason = f"every feature passes: waiting for a person's sign-off (`longrun approve {approval}`)"
        return _wait(conn, run.id, reason)
    ratchet = judgement.ratchet
    if ratchet is not None and ratchet.status == "fail":
        approval = next((a.id for a in pending if a.kind == "ratchet"), None)
        if approval is None:
            request = {"checkpoint_id": judgement.checkpoint_id, **_ratchet_request(ratchet.evidence)}
            approval = runs.add_approval(conn, run.id, "ratchet", request, session_id)
        summary = ratchet.evidence.get("summary", "the tests went down")
        reason = (
            f"the test ratchet failed ({summary}): accept it with `longrun approve {approval}`, "
            f"or `longrun deny {approval}` to have the next session restore the tests"
        )
        return _wait(conn, run.id, reason)
    if judgement.out_of_budget:
        if "budget_raise" not in kinds:
            runs.add_approval(conn, run.id, "budget_raise", {"cap": "judge.budget_share"}, session_id)
        reason = (
            "the judge's share of the budget is spent: raise budget.usd or judge.budget_share "
            f"(`longrun budget set {run.id} --usd N`)"
        )
        return _wait(conn, run.id, reason)
    return None


def waiting_reason(waiting: list[ApprovalView]) -> str:
    """Why a run waits for the calls and questions it paused on, and how to decide them."""
    parts = []
    for a in waiting:
        match a.asks:
            case QuestionRequest(question=question):
                parts.append(f"`longrun answer {a.id} TEXT`: a question waits: {question}")
            case ToolCallRequest(tool=tool, input=args, reason=reason):
                what = policy.subject(tool, args)
                parts.append(
                    f"`longrun approve {a.id}` or `deny {a.id}`: {tool} `{what[:120]}` waits ({reason})"
                )
    return "; ".join(parts)


def _wait(conn: Connection, run_id: str, reason: str) -> str:
    runs.set_run_state(conn, run_id, RunState.awaiting_approval, reason)
    runs.set_run_plan(conn, run_id, due_at=None, next_session_at=None, next_reason=None)
    return RunState.awaiting_approval


def _ratchet_request(evidence: dict[str, Any]) -> dict[str, Any]:
    keys = ("summary", "missing_files", "tests_before", "tests_now", "baseline")
    return {k: evidence[k] for k in keys if k in evidence}

"""The judge: runs the evaluators on one checkpoint of a run and stores their verdicts.

It runs after every session ends (in the supervisor, never in the worker's process) and on
demand (`longrun judge RUN [--checkpoint C]`). For each feature it runs the command check, and
the rubric judge when the feature has a rubric; a feature with both passes only when both do.
The test ratchet is judged as one more item, `ratchet`. Every verdict is stored with its
evidence (which commit and which tree were judged among it), per feature per checkpoint, and as
an event. The worker's own claims (its handoff, its messages, `.longrun/features.json`) are
never read.

Every checkpoint is judged in the judge's own tree: its commit written out from longrun's mirror
into a folder under longrun's home (`judging.tree`), never the live workspace, with the check
harness pinned at the done-condition's approval put back first (`judging.pinning`), and every
check started in a fresh environment. A judgement that raises is never silent: every item gets
an `error` verdict naming why, and `apply_judgement` trips the run's `judge_error` breaker. A
checkpoint whose refs the worker deleted or moved (a `tamper` event) trips `tamper`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from longrun.evaluators import ratchet as ratchet_eval
from longrun.evaluators.command import CheckVerdict, run_check
from longrun.evaluators.llm import (
    CheckOutput,
    RubricVerdict,
)
from longrun.scheduler.guards import policy
from longrun.scheduler.judging.features import features_file_change
from longrun.scheduler.judging.pinning import latest_pin, pin_harness, restore_harness
from longrun.scheduler.judging.rubric import _carried, _rubric_input, _RubricJudge
from longrun.scheduler.judging.tree import JudgedTree, judge_env, judge_tree
from longrun.scheduler.session import mirror
from longrun.scheduler.spec.keys import RATCHET
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.models import RunState
from longrun.store.runs import ApprovalView, CheckpointView, RunView, VerdictView
from longrun.store.runs.requests import DoneConditionRequest, QuestionRequest, ToolCallRequest

ANCESTORS_SEARCHED = 500
"""How far back the judge looks for a feature's last pass and for the ratchet's best measure."""
JUDGE_ERROR = "judge_error"
TAMPER = "tamper"
"""The breakers a judgement trips itself: judging failed, or the checkpoint refs were tampered with."""


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
    error: str | None = None
    """Why judging failed (every item then has an `error` verdict saying so)."""
    tamper: str | None = None
    """How the checkpoint refs were tampered with, when they were before this checkpoint."""

    @property
    def all_pass(self) -> bool:
        """Every feature passes, and the ratchet does not fail: the done-condition holds."""
        if not self.features or self.error is not None or self.tamper is not None:
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
    at_head = cp.id == run.head_checkpoint_id and not live
    changed = _check_copy(store, run, session_id) if at_head else None
    tamper = _tamper_at(store, run.id, cp.id)
    error = None
    usd, out_of_budget = 0.0, False
    try:
        verdicts, usd, out_of_budget, ratchet = _evaluate(store, run, spec, cp, session_id)
    except Exception as exc:  # a judge failure is never silent: it becomes error verdicts
        error = _one_line(exc)
        verdicts, ratchet = _error_verdicts(spec, cp, error)
        log.record(
            store, run.id, "judge_failed", {"checkpoint_id": cp.id, "error": error}, session_id=session_id
        )
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
            "commit": cp.commit,
            **({"error": error} if error else {}),
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
        error=error,
        tamper=tamper,
    )


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, LongrunError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split())
    return f"judging failed: {text[:400]}"


def _error_verdicts(
    spec: RunSpec, cp: CheckpointView, error: str
) -> tuple[list[VerdictView], VerdictView | None]:
    evidence = {"error": error, "summary": error}
    verdicts = [VerdictView(f.id, cp.id, "judge", "error", evidence) for f in spec.features]
    ratchet = VerdictView(RATCHET, cp.id, "judge", "error", evidence) if spec.judge.ratchet.enabled else None
    return verdicts, ratchet


def _tamper_at(store: Store, run_id: str, checkpoint_id: int) -> str | None:
    """How the checkpoint refs were tampered with on the way to this checkpoint, since a person
    last reset the `tamper` breaker; None when they were not."""
    events = log.read_events(store, run_id, kinds=[TAMPER])
    if not events:
        return None
    resets = [
        e.seq
        for e in log.read_events(store, run_id, kinds=["breaker_reset"])
        if e.data.get("breaker") == TAMPER
    ]
    line = {c.id for c in runs.checkpoint_ancestors(store, checkpoint_id, ANCESTORS_SEARCHED)}
    for event in reversed(events):
        if resets and event.seq < resets[-1]:
            break
        if event.data.get("checkpoint_id") in line:
            return str(event.data.get("detail") or "longrun's checkpoint refs were changed in the workspace")
    return None


def _evaluate(
    store: Store, run: RunView, spec: RunSpec, cp: CheckpointView, session_id: int | None
) -> tuple[list[VerdictView], float, bool, VerdictView | None]:
    ancestors = runs.checkpoint_ancestors(store, cp.id, ANCESTORS_SEARCHED)
    pin = latest_pin(store, run.id)
    if pin is None and spec.features:
        first = ancestors[-1] if ancestors else cp
        pin = pin_harness(store, run, spec, first, by="judge", why="no pin yet: the run's first checkpoint")
    with judge_tree(store.home, Path(run.workspace), run.id, cp.commit) as tree:
        harness = restore_harness(store, tree, pin) if pin is not None else None
        env = judge_env(store.home, tree.path, Path(run.workspace))
        verdicts, usd, out_of_budget = _judge_features(
            store, run, spec, cp, ancestors, tree.path, env, session_id
        )
        ratchet = _judge_ratchet(store, run, spec, cp, ancestors, tree, env, harness)
        judged = tree.evidence()
    for verdict in verdicts:
        verdict.evidence["judged"] = judged
    if ratchet is not None:
        ratchet.evidence["judged"] = judged
    return verdicts, usd, out_of_budget, ratchet


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


def _judge_features(
    store: Store,
    run: RunView,
    spec: RunSpec,
    cp: CheckpointView,
    ancestors: list[CheckpointView],
    tree: Path,
    env: dict[str, str],
    session_id: int | None,
) -> tuple[list[VerdictView], float, bool]:
    checks: dict[str, CheckVerdict] = {}
    for feature in spec.features:
        if feature.check:
            checks[feature.id] = run_check(
                feature.id, feature.check, tree, feature.timeout.total_seconds(), env
            )
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
    to_judge = []
    for feature in rubrics:
        base = next((c for c in ancestors[1:] if c.features.get(feature.id) == "pass"), ancestors[-1])
        repo = mirror.repository_with(store.home, Path(run.workspace), run.id, base.commit, cp.commit)
        item, passed_at = _rubric_input(run, spec, feature, cp, ancestors, outputs, repo)
        if passed_at is not None and not item.diff:
            judged[feature.id] = _carried(feature, cp, passed_at)  # no model started for it
        else:
            to_judge.append((feature, item))
    if to_judge:
        with _RubricJudge(store, run, spec, session_id) as judge:
            for feature, item in to_judge:
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
    store: Store,
    run: RunView,
    spec: RunSpec,
    cp: CheckpointView,
    ancestors: list[CheckpointView],
    tree: JudgedTree,
    env: dict[str, str],
    harness: dict[str, Any] | None,
) -> VerdictView | None:
    """The ratchet's verdict: tests never go down against the latest checkpoint that passed it
    (since the last time a person accepted its tests), and the check harness is as pinned. None
    when there are no tests, never were, and the harness is unchanged."""
    settings = spec.judge.ratchet
    verdict = None
    if settings.enabled:
        collect = None if settings.collect == "none" else settings.collect
        patterns = settings.tests or ratchet_eval.DEFAULT_TEST_PATTERNS
        timeout = settings.timeout.total_seconds()
        now = ratchet_eval.measure(tree.path, patterns, collect, timeout, env)
        baseline = _baseline(store, run, cp, ancestors, patterns, collect, timeout)
        if baseline is not None or now.files or now.collected:
            verdict = ratchet_eval.compare(
                now, baseline[1] if baseline else None, baseline[0] if baseline else None
            )
    if harness is None:
        return VerdictView(RATCHET, cp.id, "ratchet", verdict.status, verdict.evidence) if verdict else None
    evidence = dict(verdict.evidence) if verdict is not None else {}
    tests = evidence.get("summary")
    evidence["harness_changed"] = harness
    evidence["summary"] = harness["summary"] + (
        f"; {tests}" if tests and verdict and verdict.status != "pass" else ""
    )
    return VerdictView(RATCHET, cp.id, "ratchet", "fail", evidence)


def _baseline(
    store: Store,
    run: RunView,
    cp: CheckpointView,
    ancestors: list[CheckpointView],
    patterns: tuple[str, ...],
    collect: str | None,
    timeout: float,
) -> tuple[str, ratchet_eval.TestMeasure] | None:
    """The latest measure on this line that passed the ratchet (or a person accepted); else the
    run's starting point, measured now in a tree of its own."""
    earlier = [c for c in ancestors if c.id != cp.id]
    if not earlier:
        return None
    first = earlier[-1]
    found = runs.verdicts_at(store, [c.id for c in earlier])
    start: ratchet_eval.TestMeasure | None = None
    for c in earlier:  # newest first
        mine = [v for v in found[c.id] if v.feature_id == RATCHET and "measure" in v.evidence]
        if mine:
            measure = ratchet_eval.TestMeasure.from_json(mine[-1].evidence["measure"])
            if mine[-1].status == "pass":
                return (f"checkpoint {c.id}", measure)
            if c.id == first.id:
                start = measure
        if any(v.evidence.get("accepted_by") for v in found[c.id] if v.feature_id == RATCHET):
            break  # a person accepted this checkpoint's tests: nothing before it counts
    if start is None:
        with judge_tree(store.home, Path(run.workspace), run.id, first.commit) as start_tree:
            env = judge_env(store.home, start_tree.path, Path(run.workspace))
            start = ratchet_eval.measure(start_tree.path, patterns, collect, timeout, env)
        if not (start.files or start.collected):
            return None
        verdict = ratchet_eval.compare(start, None)
        evidence = {**verdict.evidence, "judged": {"commit": first.commit, "where": "the judge's own tree"}}
        runs.add_verdicts(
            store, run.id, first.id, [VerdictView(RATCHET, first.id, "ratchet", verdict.status, evidence)]
        )
    if start.error is not None and start.functions is None:
        return None  # nothing usable: the suite could not run and no syntax trees name its tests
    return (f"checkpoint {first.id}", start)


def apply_judgement(
    conn: Connection, store: Store, run: RunView, spec: RunSpec, judgement: Judgement, session_id: int | None
) -> str | None:
    """Set the run's state when the judgement decides it, in the caller's transaction, and return
    the state set; None leaves the run to its schedule.

    Done needs every feature to pass at the checkpoint (and the ratchet not to fail); with
    `[approvals] sign_off` it waits for a person first. A proposed done-condition, a ratchet that
    failed, and a judge out of budget each wait for a person too. Tampered checkpoint refs and a
    judgement that failed trip a breaker (`tamper`, `judge_error`): the run waits in `tripped`.
    """
    if judgement.tamper is not None:
        return _trip(conn, store, run, TAMPER, judgement.tamper, session_id)
    if judgement.error is not None:
        return _trip(
            conn,
            store,
            run,
            JUDGE_ERROR,
            f"checkpoint {judgement.checkpoint_id}: {judgement.error}",
            session_id,
        )
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


def _trip(
    conn: Connection, store: Store, run: RunView, name: str, detail: str, session_id: int | None
) -> str:
    runs.set_breaker(conn, run.id, name, "open", detail[:500])
    log.append(
        conn, run.id, "breaker_tripped", {"breaker": name, "detail": detail[:500]}, session_id=session_id
    )
    pending = runs.list_approvals(store, run.id, state="pending")
    approval = next(
        (a.id for a in pending if a.kind == "breaker_reset" and a.request.get("breaker") == name), None
    )
    if approval is None:
        request = {"breaker": name, "detail": detail[:500]}
        approval = runs.add_approval(conn, run.id, "breaker_reset", request, session_id)
    reason = f"breaker {name} tripped: {detail[:300]} (reset it with `longrun approve {approval}`)"
    runs.set_run_state(conn, run.id, RunState.tripped, reason)
    runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
    return RunState.tripped


def _wait(conn: Connection, run_id: str, reason: str) -> str:
    runs.set_run_state(conn, run_id, RunState.awaiting_approval, reason)
    runs.set_run_plan(conn, run_id, due_at=None, next_session_at=None, next_reason=None)
    return RunState.awaiting_approval


def _ratchet_request(evidence: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "summary",
        "missing_files",
        "tests_before",
        "tests_now",
        "baseline",
        "findings",
        "harness_changed",
    )
    return {k: evidence[k] for k in keys if k in evidence}

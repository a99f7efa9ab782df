"""The done-condition: editing it, accepting a test-ratchet drop, judging now, and the verdict
matrix the dashboard and `longrun verdicts` show.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from longrun.scheduler.control.runs import ACTIVE_STATES, _decided_already, _go_on, _who
from longrun.scheduler.judging.features import features_toml
from longrun.scheduler.judging.judge import Judgement, apply_judgement, judge_checkpoint
from longrun.scheduler.judging.pinning import pin_harness
from longrun.scheduler.spec.keys import RATCHET
from longrun.scheduler.spec.load import parse_features
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition
from longrun.store.runs import ApprovalView, CheckpointView, RunView, VerdictView
from longrun.store.runs.requests import DoneConditionRequest, RatchetRequest


def _accept_ratchet(
    conn: Connection, store: Store, run: RunView, approval: ApprovalView, who: str, comment: str | None
) -> None:
    """A person accepts the tests as they are at the approval's checkpoint: the ratchet passes
    there, and it becomes the new baseline."""
    asks = approval.asks
    if not isinstance(asks, RatchetRequest) or asks.checkpoint_id is None:
        raise InvalidTransition(f"approval {approval.id} names no checkpoint whose tests to accept")
    checkpoint_id = asks.checkpoint_id
    failed = [v for v in runs.verdicts_at(store, [checkpoint_id])[checkpoint_id] if v.feature_id == RATCHET]
    evidence: dict[str, object] = {"accepted_by": who, "comment": comment, "approval_id": approval.id}
    if failed and "measure" in failed[-1].evidence:
        evidence["measure"] = failed[-1].evidence["measure"]
        evidence["summary"] = f"accepted by {who}: {failed[-1].evidence.get('summary', '')}".strip()
    accepted = VerdictView(RATCHET, checkpoint_id, "person", "pass", evidence)
    runs.add_verdicts_in(conn, run.id, checkpoint_id, [accepted])


def _stored_judgement(store: Store, run: RunView, spec: RunSpec) -> Judgement | None:
    """The judgement already stored at the run's head checkpoint (no evaluator runs again)."""
    if run.head_checkpoint_id is None:
        return None
    status = runs.get_checkpoint(store, run.head_checkpoint_id).features
    return Judgement(run.id, run.head_checkpoint_id, dict(status), tuple(f.id for f in spec.features))


def features_text(store: Store, ref: str) -> tuple[RunView, str]:
    """The done-condition to edit, as TOML: the pending proposal when there is one, else the run's."""
    run = runs.get_run(store, ref)
    proposal = _pending_proposal(store, run)
    if proposal is not None:
        asks = proposal.asks
        proposed = asks.features if isinstance(asks, DoneConditionRequest) else []
        spec = RunSpec.model_validate({**run.spec, "features": proposed})
        header = (
            f"The done-condition proposed for run {run.name} ({run.id}), approval {proposal.id}.\n"
            "Saving approves it as edited; an empty file leaves it pending."
        )
    else:
        spec = RunSpec.model_validate(run.spec)
        header = (
            f"The done-condition of run {run.name} ({run.id}). "
            "Saving replaces it; an empty file changes nothing."
        )
    header += "\nEach [[features]] has an id, a description, and a check (a shell command) and/or a rubric."
    return run, features_toml(spec.features, header)


def edit_features(
    store: Store, ref: str, text_: str, *, source: str, by: str | None = None, comment: str | None = None
) -> RunView:
    """Set the run's done-condition from edited TOML; a pending proposal is approved as edited."""
    run = runs.get_run(store, ref)
    spec = parse_features(text_, source=source, spec=RunSpec.model_validate(run.spec))
    proposal = _pending_proposal(store, run)
    _set_features(store, run, spec, proposal, _who(by), comment, edited=True)
    return runs.get_run(store, run.id)


def _pending_proposal(store: Store, run: RunView) -> ApprovalView | None:
    pending = runs.list_approvals(store, run.id, state="pending")
    return next((a for a in pending if a.kind == "done_condition"), None)


def _set_features(
    store: Store,
    run: RunView,
    spec: RunSpec,
    proposal: ApprovalView | None,
    who: str,
    comment: str | None,
    *,
    edited: bool,
) -> None:
    features = [f.model_dump(mode="json", exclude_defaults=True) for f in spec.features]
    with store.writing() as conn:
        if proposal is not None and not runs.decide_approval(conn, proposal.id, "approved", who, comment):
            raise InvalidTransition(_decided_already(runs.get_approval(store, proposal.id)))
        runs.set_run_spec(conn, run.id, spec.model_dump(mode="json"))
        log.append(
            conn,
            run.id,
            "features_set",
            {
                "by": who,
                "features": features,
                "edited": edited,
                "approval_id": proposal.id if proposal else None,
            },
        )
        if proposal is not None:
            _go_on(conn, run.id, f"done-condition approved by {who}")
    if run.head_checkpoint_id is not None and spec.features:
        head = runs.get_checkpoint(store, run.head_checkpoint_id)
        why = "a proposed done-condition approved" if proposal is not None else "the done-condition set"
        pin_harness(store, run, spec, head, by=who, why=why)


def judge_now(store: Store, ref: str, checkpoint_id: int | None = None, by: str | None = None) -> Judgement:
    """`longrun judge`: judge a checkpoint now. At the head of a run with no session running, the
    verdicts count as after a session: a run whose features all pass is done (or waits for sign-off)."""
    run = runs.get_run(store, ref)
    who = _who(by)
    judgement = judge_checkpoint(store, run.id, checkpoint_id, by=who)
    current = runs.get_run(store, run.id)
    live = any(not s.is_final for s in runs.list_sessions(store, run.id))
    at_head = judgement.checkpoint_id == current.head_checkpoint_id
    if at_head and not live and current.state in ACTIVE_STATES:
        spec = RunSpec.model_validate(current.spec)
        with store.writing() as conn:
            apply_judgement(conn, store, current, spec, judgement, None)
    return judgement


def verdict_matrix(store: Store, ref: str) -> dict[str, Any]:
    """`longrun verdicts RUN --json`: features × judged checkpoints, the latest verdict in each cell."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    latest: dict[tuple[str, int], VerdictView] = {}
    for verdict in runs.run_verdicts(store, run.id):
        latest[(verdict.feature_id, verdict.checkpoint_id)] = verdict
    judged = sorted({cp for _, cp in latest})
    by_id = {c.id: c for c in runs.list_checkpoints(store, run.id)}
    sessions = {s.id: s.n for s in runs.list_sessions(store, run.id)}
    ids = [f.id for f in spec.features]
    ids += sorted({f for f, _ in latest if f not in ids and f != RATCHET})
    ids += [RATCHET] if any(f == RATCHET for f, _ in latest) else []
    features = []
    for feature_id in ids:
        cells = [latest[(feature_id, cp)] for cp in judged if (feature_id, cp) in latest]
        history = [c.status for c in cells]
        features.append(
            {
                "id": feature_id,
                "in_done_condition": feature_id in {f.id for f in spec.features},
                "latest": history[-1] if history else "unjudged",
                "history": history,
                "verdicts": [
                    {
                        "checkpoint_id": c.checkpoint_id,
                        "status": c.status,
                        "judge": c.judge,
                        "evidence": c.evidence,
                        "judged_at": c.to_json()["created_at"],
                    }
                    for c in cells
                ],
            }
        )
    return {
        "run_id": run.id,
        "name": run.name,
        "state": run.state,
        "checkpoints": [
            {
                "id": cp,
                "seq": by_id[cp].seq if cp in by_id else None,
                "reason": by_id[cp].reason if cp in by_id else None,
                "session": _session_n(sessions, by_id.get(cp)),
                "commit": by_id[cp].commit if cp in by_id else None,
            }
            for cp in judged
        ],
        "features": features,
    }


def features_document_of(store: Store, ref: str) -> dict[str, Any]:
    """`longrun features RUN --json`: the done-condition, each feature's latest verdict, and a
    pending proposal when there is one."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    latest = runs.latest_verdicts(store, run.id, [f.id for f in spec.features] + [RATCHET])
    proposal = _pending_proposal(store, run)
    return {
        "run_id": run.id,
        "state": run.state,
        "features": [
            {
                **f.model_dump(mode="json", exclude_defaults=True),
                "status": latest[f.id].status if f.id in latest else "unjudged",
                "checkpoint_id": latest[f.id].checkpoint_id if f.id in latest else None,
            }
            for f in spec.features
        ],
        "ratchet": latest[RATCHET].to_json() if RATCHET in latest else None,
        "proposal": proposal.to_json() if proposal else None,
    }


def _session_n(sessions: dict[int, int], cp: CheckpointView | None) -> int | None:
    """The number of the session that took a checkpoint, when a session took it."""
    return sessions.get(cp.session_id) if cp is not None and cp.session_id is not None else None

"""Control verbs: the only way the CLI and the UI change a run.

Each verb validates against the run's current state and writes in one transaction.
"""

from __future__ import annotations

import os
import pwd
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Connection, text

from longrun.scheduler.demo import write_demo_project
from longrun.scheduler.guards.budget import Spent, caps_left
from longrun.scheduler.guards.pricing import prices_for
from longrun.scheduler.judging.features import features_toml
from longrun.scheduler.judging.judge import Judgement, apply_judgement, judge_checkpoint
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.session.harness import take_checkpoint
from longrun.scheduler.spec.keys import RATCHET
from longrun.scheduler.spec.load import load_spec, parse_features
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.supervisor.launch import run_one_session
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition, SpecError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import ApprovalView, RunView, SessionView, VerdictView

ACTIVE_STATES = {
    RunState.draft,
    RunState.scheduled,
    RunState.running,
    RunState.paused,
    RunState.awaiting_approval,
    RunState.tripped,
}


def new_run_id() -> str:
    return secrets.token_hex(4)


def create_run(store: Store, spec: RunSpec, spec_path: Path | None) -> RunView:
    """Register a run: check its model has a price, make its workspace a git repository on the
    run's own branch, and record the starting point as its first checkpoint."""
    if prices_for(spec, store.home).find(spec.worker.model) is None:
        raise SpecError(
            f"{spec_path or 'spec'}: worker.model: no price known for {spec.worker.model!r} "
            f"(add it to {store.home / 'pricing.toml'})"
        )
    workspace = Path(spec.workspace)
    for other in runs.list_runs(store):
        if other.workspace == str(workspace) and other.state in ACTIVE_STATES:
            raise InvalidTransition(
                f"{workspace}: already the workspace of run {other.name} ({other.id}, {other.state}); "
                "give this run a workspace of its own"
            )
    run_id = new_run_id()
    branch = ws.branch_name(run_id)
    ws.init_workspace(workspace, branch)
    run = runs.insert_run(
        store,
        run_id=run_id,
        name=spec.name,
        goal=spec.goal,
        spec=spec.model_dump(mode="json"),
        spec_path=str(spec_path) if spec_path else None,
        workspace=str(workspace),
        branch=branch,
        state=RunState.draft,
    )
    take_checkpoint(store, run, None, "created", None)
    return runs.get_run(store, run_id)


def create_run_from_file(store: Store, path: Path, overrides: list[str] | None = None) -> RunView:
    spec = load_spec(path, overrides or [])
    return create_run(store, spec, path.resolve())


def run_session_now(store: Store, ref: str) -> SessionView:
    """One session of the run, in the foreground: started now, watched to its end, then judged."""
    run = runs.get_run(store, ref)
    return run_one_session(store, run)


def prepare_demo(store: Store, overrides: list[str] | None = None) -> RunView:
    """Write the demo project into a fresh folder of the store's home and create its run."""
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    dest = store.home / "demo" / f"{stamp}-{secrets.token_hex(2)}"
    spec_path = write_demo_project(dest)
    return create_run_from_file(store, spec_path, overrides)


ACTIVE_NOW = {RunState.scheduled, RunState.running}


def _who(by: str | None) -> str:
    """Who decides: the name given, else the OS user."""
    if by:
        return by
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


def _transition(
    store: Store, ref: str, verb: str, allowed: set[RunState], by: str | None
) -> tuple[RunView, list[SessionView], str]:
    run = runs.get_run(store, ref)
    if run.state not in allowed:
        can = ", ".join(sorted(allowed))
        raise InvalidTransition(f"run {run.name} ({run.id}) is {run.state}: {verb} needs it to be {can}")
    live = [s for s in runs.list_sessions(store, run.id) if not s.is_final]
    return run, live, _who(by)


def start(store: Store, ref: str, by: str | None = None) -> RunView:
    """Hand a run to the supervisor: its sessions start on its schedule."""
    run, _, who = _transition(store, ref, "start", {RunState.draft}, by)
    return _hand_to_supervisor(store, run, "started", who)


def resume(store: Store, ref: str, by: str | None = None) -> RunView:
    """Let a paused run go on: its next session starts on its schedule."""
    run, _, who = _transition(store, ref, "resume", {RunState.paused}, by)
    return _hand_to_supervisor(store, run, "resumed", who)


def _hand_to_supervisor(store: Store, run: RunView, verb: str, who: str) -> RunView:
    with store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.scheduled, f"{verb} by {who}")
        runs.set_run_plan(conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=verb)
        log.append(conn, run.id, verb, {"by": who})
    return runs.get_run(store, run.id)


def pause(store: Store, ref: str, by: str | None = None) -> RunView:
    """No new session; a running one wraps up at its next step and ends with a checkpoint."""
    return _halt(store, ref, "pause", "paused", by, kill=False)


def stop(store: Store, ref: str, by: str | None = None) -> RunView:
    """No new session, and a running one is ended now (the supervisor kills it, with a checkpoint)."""
    return _halt(store, ref, "stop", "stopped", by, kill=True)


def _halt(store: Store, ref: str, verb: str, done: str, by: str | None, *, kill: bool) -> RunView:
    run, live, who = _transition(store, ref, verb, ACTIVE_NOW, by)
    with store.writing() as conn:
        for s in live:
            runs.request_session_end(conn, s.id, kill=kill)
        runs.set_run_state(conn, run.id, RunState.paused, f"{done} by {who}")
        runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
        told = "sessions_ended" if kill else "sessions_told_to_wrap_up"
        log.append(conn, run.id, done, {"by": who, told: [s.n for s in live]})
    return runs.get_run(store, run.id)


def set_budget(
    store: Store,
    ref: str,
    caps: dict[str, float | int],
    *,
    by: str | None = None,
    comment: str | None = None,
) -> RunView:
    """Change a run's caps (`usd`, `tokens`, `per_session_usd`, `per_day_usd`).

    A raise decides the run's pending budget-raise approval, and a run that waited for it goes on.
    """
    run = runs.get_run(store, ref)
    who = _who(by)
    old = dict(run.spec.get("budget", {}))
    new_spec = {**run.spec, "budget": {**old, **caps}}
    try:
        spec = RunSpec.model_validate(new_spec)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"budget: {where}: {first['msg']}") from None
    spent = {"usd": run.usage.usd, "tokens": run.usage.tokens}
    for cap, value in caps.items():
        if cap in spent and value <= spent[cap]:
            raise InvalidTransition(
                f"budget.{cap}: {spent[cap]:g} is already spent; "
                f"a new cap must be more than that, found {value:g}"
            )
    pending = runs.list_approvals(store, run.id, state="pending")
    with store.writing() as conn:
        runs.set_run_spec(conn, run.id, spec.model_dump(mode="json"))
        log.append(conn, run.id, "budget_set", {"by": who, "from": old, "to": caps, "comment": comment})
        raised = [a for a in pending if a.kind == "budget_raise"]
        for approval in raised:
            runs.decide_approval(conn, approval.id, "approved", who, comment)
        if run.state == RunState.awaiting_approval and len(raised) == len(pending):
            runs.set_run_state(conn, run.id, RunState.scheduled, f"budget raised by {who}")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="budget raised"
            )
    return runs.get_run(store, run.id)


def budget_document(store: Store, ref: str, now: datetime | None = None) -> dict[str, object]:
    """`longrun budget RUN --json`: every cap with what is spent and left, spend today and in the
    last hour (before `now`), and the breakers."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    now = now or utcnow()
    today = runs.day_usage(store, run.id, runs.utc_day(now))
    live = runs.live_sessions_of(store, run.id)
    session_usage = live[0].usage if live else runs.Usage()
    caps = caps_left(spec.budget, Spent(run.usage, session_usage, today))
    breakers = runs.breakers(store, run.id)
    return {
        "run_id": run.id,
        "state": run.state,
        "spent_usd": round(run.usage.usd, 6),
        "tokens": run.usage.to_json(),
        "today_usd": round(today.usd, 6),
        "last_hour_usd": round(runs.spent_since(store, run.id, now - timedelta(hours=1)), 6),
        "warn_at": spec.budget.warn_at,
        "caps": [
            {
                "cap": c.name,
                "limit": c.limit,
                "spent": round(c.spent, 6),
                "left": round(c.left, 6),
                "fraction": round(c.spent / c.limit, 4) if c.limit else None,
            }
            for c in caps
        ],
        "breakers": [
            {
                "name": name,
                "limit": value,
                "state": breakers[name].state if name in breakers else "closed",
                "reason": breakers[name].reason if name in breakers else None,
            }
            for name, value in spec.breakers.model_dump(mode="json").items()
            if name in BREAKER_NAMES
        ],
        "pending_approvals": [a.to_json() for a in runs.list_approvals(store, run.id, state="pending")],
    }


BREAKER_NAMES = (
    "no_progress_sessions",
    "consecutive_failures",
    "same_error_repeats",
    "max_usd_per_hour",
    "api_errors",
)


def reset_breaker(
    store: Store, ref: str, name: str, *, by: str | None = None, comment: str | None = None
) -> RunView:
    """Half-open a tripped breaker: the next session is a trial, and one more bad sign opens it again."""
    run = runs.get_run(store, ref)
    if name not in BREAKER_NAMES:
        raise InvalidTransition(f"no breaker named {name!r} (breakers: {', '.join(BREAKER_NAMES)})")
    current = runs.breakers(store, run.id).get(name)
    if current is None or current.state != "open":
        state = current.state if current else "closed"
        raise InvalidTransition(
            f"breaker {name} of run {run.name} is {state}: only an open breaker can be reset"
        )
    who = _who(by)
    pending = runs.list_approvals(store, run.id, state="pending")
    with store.writing() as conn:
        runs.set_breaker(conn, run.id, name, "half_open")
        log.append(conn, run.id, "breaker_reset", {"breaker": name, "by": who, "comment": comment})
        for approval in pending:
            if approval.kind == "breaker_reset" and approval.request.get("breaker") == name:
                runs.decide_approval(conn, approval.id, "approved", who, comment)
    still_open = [n for n, b in runs.breakers(store, run.id).items() if b.state == "open"]
    if run.state == RunState.tripped and not still_open:
        with store.writing() as conn:
            runs.set_run_state(conn, run.id, RunState.scheduled, f"breaker {name} reset by {who} (half-open)")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="breaker reset"
            )
    return runs.get_run(store, run.id)


# --- approvals and the done-condition ---------------------------------------------------------


def decide(
    store: Store, approval_id: int, *, approve: bool, by: str | None = None, comment: str | None = None
) -> ApprovalView:
    """Approve or deny a pending approval, once, and let its run go on as the decision says."""
    approval = runs.get_approval(store, approval_id)
    who = _who(by)
    _still_pending(approval)
    run = runs.get_run(store, approval.run_id)
    kind = approval.kind
    if approve and kind == "question":
        raise InvalidTransition(
            f"approval {approval.id} is a question: answer it with `longrun answer {approval.id} TEXT`"
        )
    if approve and kind == "budget_raise":
        raise InvalidTransition(
            f"approval {approval.id} asks for more budget: "
            f"raise it with `longrun budget set {run.id} --usd N`"
        )
    if approve and kind == "breaker_reset":
        reset_breaker(store, run.id, str(approval.request.get("breaker")), by=who, comment=comment)
        return runs.get_approval(store, approval.id)
    if approve and kind == "done_condition":
        spec = RunSpec.model_validate({**run.spec, "features": approval.request.get("features", [])})
        _set_features(store, run, spec, approval, who, comment, edited=False)
        return runs.get_approval(store, approval.id)
    state = "approved" if approve else "denied"
    said = f"{kind.replace('_', ' ')} {state} by {who}"
    with store.writing() as conn:
        if not runs.decide_approval(conn, approval.id, state, who, comment):
            raise InvalidTransition(_decided_already(runs.get_approval(store, approval.id)))
        if approve and kind == "ratchet":
            _accept_ratchet(conn, store, run, approval, who, comment)
        if approve and kind == "sign_off":
            runs.set_run_state(conn, run.id, RunState.done, f"every feature passes; signed off by {who}")
            runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
            done = {"checkpoint_id": approval.request.get("checkpoint_id"), "by": who}
            log.append(conn, run.id, "run_done", done)
        elif not approve and kind in ("budget_raise", "breaker_reset"):
            runs.set_run_state(conn, run.id, RunState.paused, said)
        elif not (approve and kind == "ratchet"):
            _go_on(conn, run.id, said)
    if approve and kind == "ratchet":
        # The tests as they are now are accepted: a run whose features all pass at its head is done.
        current = runs.get_run(store, run.id)
        spec = RunSpec.model_validate(current.spec)
        judgement = _stored_judgement(store, current, spec)
        with store.writing() as conn:
            if judgement is None or apply_judgement(conn, store, current, spec, judgement, None) is None:
                _go_on(conn, run.id, said)
    return runs.get_approval(store, approval.id)


def _still_pending(approval: ApprovalView) -> None:
    if approval.state != "pending":
        raise InvalidTransition(_decided_already(approval))


def _decided_already(approval: ApprovalView) -> str:
    when = approval.decided_at.isoformat(timespec="seconds") if approval.decided_at else "earlier"
    return f"approval {approval.id} was already {approval.state} by {approval.decided_by or '?'} at {when}"


def _go_on(conn: Connection, run_id: str, reason: str) -> None:
    """A run that waited for people goes back to its schedule once nothing else is pending."""
    state = conn.execute(text("SELECT state FROM run WHERE id = :id"), {"id": run_id}).scalar_one()
    pending = conn.execute(
        text("SELECT COUNT(*) FROM approval WHERE run_id = :run AND state = 'pending'"), {"run": run_id}
    ).scalar_one()
    if state != RunState.awaiting_approval or pending:
        return
    runs.set_run_state(conn, run_id, RunState.scheduled, reason)
    runs.set_run_plan(conn, run_id, due_at=None, hold_until=None, next_session_at=None, next_reason=reason)


def _accept_ratchet(
    conn: Connection, store: Store, run: RunView, approval: ApprovalView, who: str, comment: str | None
) -> None:
    """A person accepts the tests as they are at the approval's checkpoint: the ratchet passes
    there, and it becomes the new baseline."""
    checkpoint_id = int(approval.request["checkpoint_id"])
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
        spec = RunSpec.model_validate({**run.spec, "features": proposal.request.get("features", [])})
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


def verdict_matrix(store: Store, ref: str) -> dict[str, object]:
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
                "session": sessions.get(by_id[cp].session_id)
                if cp in by_id and by_id[cp].session_id
                else None,
                "commit": by_id[cp].commit if cp in by_id else None,
            }
            for cp in judged
        ],
        "features": features,
    }


def features_document_of(store: Store, ref: str) -> dict[str, object]:
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


def answer(store: Store, approval_id: int, text_: str, *, by: str | None = None) -> ApprovalView:
    """Answer a question the worker asked; the next session goes on with the answer."""
    approval = runs.get_approval(store, approval_id)
    _still_pending(approval)
    if approval.kind != "question":
        raise InvalidTransition(
            f"approval {approval.id} is a {approval.kind.replace('_', ' ')}, not a question: "
            f"use `longrun approve {approval.id}` or `longrun deny {approval.id}`"
        )
    if not text_.strip():
        raise InvalidTransition("an answer needs some text")
    who = _who(by)
    with store.writing() as conn:
        if not runs.decide_approval(conn, approval.id, "answered", who, text_):
            raise InvalidTransition(_decided_already(runs.get_approval(store, approval.id)))
        _go_on(conn, approval.run_id, f"question answered by {who}")
    return runs.get_approval(store, approval.id)


def decide_by_token(store: Store, token: str, *, approve: bool, comment: str | None = None) -> ApprovalView:
    """Decide the one approval a token was issued for (a link, a webhook consumer); the token is
    good once."""
    approval_id = runs.approval_of_token(store, token)
    if approval_id is None:
        raise InvalidTransition("that token decides no pending approval (it is wrong, or was used already)")
    return decide(store, approval_id, approve=approve, by="token holder", comment=comment)


def expire_approvals(store: Store) -> list[ApprovalView]:
    """Pending approvals past their `expires_at` take their rule's expiry action (deny by default)."""
    expired = []
    for approval in runs.overdue_approvals(store, utcnow()):
        action = (approval.request.get("rule") or {}).get("on_expiry", "deny")
        with store.writing() as conn:
            note = f"waited past its expiry; {'approved' if action == 'approve' else 'denied'} by the rule"
            if runs.decide_approval(conn, approval.id, "expired", "longrun", note):
                log.append(
                    conn,
                    approval.run_id,
                    "approval_expired",
                    {"approval_id": approval.id, "action": action},
                    session_id=approval.session_id,
                )
                _go_on(conn, approval.run_id, f"approval {approval.id} expired ({action})")
                expired.append(approval)
    return expired


# --- rewind, fork, resume from a checkpoint ---------------------------------------------------


def rewind(store: Store, ref: str, checkpoint_id: int, *, by: str | None = None) -> RunView:
    """Move the run's head, branch and working tree back to a checkpoint. The current state is
    checkpointed first and kept under `refs/longrun/<run>/abandoned/<n>`; nothing in the log goes."""
    run = runs.get_run(store, ref)
    target = runs.get_checkpoint(store, checkpoint_id, run.id)
    live = [s for s in runs.list_sessions(store, run.id) if not s.is_final]
    if live:
        raise InvalidTransition(
            f"run {run.name} ({run.id}) has session {live[0].n} running: "
            f"pause or stop it first (`longrun run stop {run.id}`)"
        )
    who = _who(by)
    workspace = Path(run.workspace)
    current = take_checkpoint(store, run, None, "before_rewind", None)
    abandoned = ws.git(workspace, "for-each-ref", "--format=%(refname)", f"refs/longrun/{run.id}/abandoned/")
    keep = f"refs/longrun/{run.id}/abandoned/{len(abandoned.splitlines()) + 1}"
    ws.git(workspace, "update-ref", keep, current.commit)
    ws.restore(workspace, run.branch, target.commit, keep_ref=f"{keep}-found")
    reopened = run.state in (RunState.done, RunState.failed)
    with store.writing() as conn:
        runs.set_head_checkpoint(conn, run.id, target.id)
        log.append(
            conn,
            run.id,
            "rewound",
            {"to": target.id, "from": current.id, "commit": target.commit, "abandoned_ref": keep, "by": who},
        )
        if reopened:
            runs.set_run_state(conn, run.id, RunState.paused, f"rewound to checkpoint {target.id} by {who}")
    return runs.get_run(store, run.id)


def fork(
    store: Store,
    ref: str,
    checkpoint_id: int,
    *,
    name: str | None = None,
    overrides: list[str] | None = None,
    by: str | None = None,
) -> RunView:
    """A new run from a checkpoint of another: its own git worktree and branch started there, its
    own budget and breakers, the parent's done-condition (and `--set` changes to its spec)."""
    parent = runs.get_run(store, ref)
    target = runs.get_checkpoint(store, checkpoint_id, parent.id)
    who = _who(by)
    run_id = new_run_id()
    raw = {**parent.spec, "name": name or f"{parent.name}-fork"[:64]}
    folder = Path(parent.workspace).with_name(f"{Path(parent.workspace).name}-fork-{run_id}")
    raw["workspace"] = str(folder)
    try:
        spec = RunSpec.model_validate(apply_overrides(raw, overrides or []))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"--set {where}: {first['msg']}") from None
    if prices_for(spec, store.home).find(spec.worker.model) is None:
        raise SpecError(f"--set worker.model: no price known for {spec.worker.model!r}")
    branch = ws.branch_name(run_id)
    ws.add_worktree(Path(parent.workspace), folder, branch, target.commit)
    run = runs.insert_run(
        store,
        run_id=run_id,
        name=spec.name,
        goal=spec.goal,
        spec=spec.model_dump(mode="json"),
        spec_path=parent.spec_path,
        workspace=str(folder),
        branch=branch,
        state=RunState.paused,
        parent_run_id=parent.id,
    )
    first = take_checkpoint(store, run, None, "forked", None)
    with store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.paused, f"forked from {parent.name} ({parent.id}) by {who}")
        data = {"parent_run_id": parent.id, "parent_checkpoint_id": target.id, "by": who}
        log.append(conn, run.id, "forked", data | {"checkpoint_id": first.id, "overrides": overrides or []})
        log.append(conn, parent.id, "fork_made", {"run_id": run.id, "checkpoint_id": target.id, "by": who})
    return runs.get_run(store, run.id)


RESUMABLE = {RunState.draft, RunState.paused, RunState.scheduled, RunState.done, RunState.failed}


CONTEXT_TOKENS = 200_000
"""The context window an exact resume must fit in (with the reply's max_tokens and a margin)."""


def resume_now(
    store: Store, ref: str, checkpoint_id: int | None = None, *, exact: bool = False, by: str | None = None
) -> tuple[RunView, str]:
    """Schedule a session now, from the head or (after a rewind to it) from `checkpoint_id`.

    With `exact`, the session goes on from the conversation the session that made the
    checkpoint kept, when it fits the model's context; otherwise it starts from the resume
    context. Returns the run and a line saying which.
    """
    run = runs.get_run(store, ref)
    if run.state not in RESUMABLE:
        can = ", ".join(sorted(RESUMABLE))
        waits = (
            " (decide what it waits for first: `longrun approvals`)"
            if run.state == "awaiting_approval"
            else ""
        )
        raise InvalidTransition(
            f"run {run.name} ({run.id}) is {run.state}: resume needs it to be {can}{waits}"
        )
    if checkpoint_id is not None and checkpoint_id != run.head_checkpoint_id:
        run = rewind(store, run.id, checkpoint_id, by=by)
    who = _who(by)
    how = f"from the resume context of checkpoint {run.head_checkpoint_id}"
    conversation = runs.conversation_of(store, run.id, run.head_checkpoint_id) if exact else None
    if exact and conversation is None:
        how += f" (no conversation was kept for checkpoint {run.head_checkpoint_id})"
    elif conversation is not None:
        spec = RunSpec.model_validate(run.spec)
        bound = len(log.canonical_json(conversation.messages).encode()) // 3  # tokens, generously
        room = CONTEXT_TOKENS - spec.worker.max_tokens - CONTEXT_TOKENS // 10
        if bound > room:
            how += f" (the kept conversation, about {bound:,} tokens, does not fit in {room:,})"
            conversation = None
    with store.writing() as conn:
        if conversation is not None:
            runs.add_conversation(
                conn,
                run.id,
                conversation.session_id,
                run.head_checkpoint_id or 0,
                "exact",
                conversation.messages,
            )
            how = f"exactly where the conversation of checkpoint {run.head_checkpoint_id} left off"
        reason = f"resumed by {who}"
        runs.set_run_state(conn, run.id, RunState.scheduled, reason)
        runs.set_run_plan(
            conn, run.id, due_at=utcnow(), hold_until=None, next_session_at=None, next_reason=reason
        )
        data = {
            "by": who,
            "checkpoint_id": run.head_checkpoint_id,
            "exact": conversation is not None,
            "how": how,
        }
        log.append(conn, run.id, "resumed", data)
    return runs.get_run(store, run.id), how


# --- reads for the dashboard ------------------------------------------------------------------

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""Git's empty tree: what a run's first checkpoint is compared with."""


def checkpoint_diff(store: Store, ref: str, checkpoint_id: int, limit: int = 200_000) -> tuple[str, bool]:
    """The diff of a checkpoint against its parent (a stat, then the patch), and whether it was cut."""
    run = runs.get_run(store, ref)
    checkpoint = runs.get_checkpoint(store, checkpoint_id, run.id)
    base = runs.get_checkpoint(store, checkpoint.parent_id).commit if checkpoint.parent_id else EMPTY_TREE
    if base == checkpoint.commit:
        return "", False
    return ws.diff(Path(run.workspace), base, checkpoint.commit, limit)

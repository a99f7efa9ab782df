"""Creating runs and moving them through their states: start, pause, stop, resume, a session now."""

from __future__ import annotations

import os
import pwd
import secrets
from pathlib import Path

from sqlalchemy import Connection, text

from longrun.scheduler.demo import write_demo_project
from longrun.scheduler.guards.pricing import prices_for
from longrun.scheduler.judging.pinning import pin_harness
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.session.checkpoints import take_checkpoint
from longrun.scheduler.spec.load import load_spec
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.supervisor.launch import run_one_session
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition, SpecError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import ApprovalView, RunView, SessionView

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
    if spec.worker.backend == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise SpecError(
            f'{spec_path or "spec"}: worker.backend = "anthropic" needs ANTHROPIC_API_KEY in the environment '
            '(of this command and of the supervisor); set it, or try longrun with backend = "scripted"'
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
    first = take_checkpoint(store, run, None, "created", None)
    if spec.features:
        pin_harness(
            store, run, spec, first, by="longrun", why="the done-condition of the spec the run was made from"
        )
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
    _sandbox_ready(run)
    with store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.scheduled, f"{verb} by {who}")
        runs.set_run_plan(conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=verb)
        log.append(conn, run.id, verb, {"by": who})
    return runs.get_run(store, run.id)


def _sandbox_ready(run: RunView) -> None:
    """A run whose spec asks for the sandbox does not start where none can be made: it says how to
    get bubblewrap (a `SandboxUnavailable`), and never runs unconfined instead."""
    from longrun.scheduler.session.sandbox import require_bwrap
    from longrun.scheduler.workers.registry import backend_of

    spec = RunSpec.model_validate(run.spec)
    if spec.sandbox.mode == "on" and backend_of(spec.worker).sandboxed:
        require_bwrap()


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

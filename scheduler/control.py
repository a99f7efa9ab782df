"""Control verbs: the only way the CLI and the UI change a run.

Each verb validates against the run's current state and writes in one transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from longrun.scheduler import workspace as ws
from longrun.scheduler.demo import write_demo_project
from longrun.scheduler.launch import run_one_session
from longrun.scheduler.pricing import load_prices
from longrun.scheduler.session import take_checkpoint
from longrun.scheduler.spec import RunSpec, load_spec
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition, SpecError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import RunView, SessionView

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
    if load_prices(store.home).find(spec.worker.model) is None:
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
        state=RunState.scheduled,
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


@dataclass(frozen=True)
class DemoResult:
    run: RunView
    sessions: list[SessionView]
    timed_out: bool


def run_until_done(store: Store, ref: str, *, timeout_s: float, max_sessions: int = 10) -> DemoResult:
    """Sessions back to back until the judge says done, the time runs out or `max_sessions` ran."""
    stop_at = utcnow() + timedelta(seconds=timeout_s)
    run = runs.get_run(store, ref)
    for _ in range(max_sessions):
        if run.state in (RunState.done, RunState.failed, RunState.archived):
            break
        if utcnow() >= stop_at:
            return DemoResult(run, runs.list_sessions(store, run.id), True)
        session = run_one_session(store, run, stop_at=stop_at)
        run = runs.get_run(store, run.id)
        if session.state == "killed":
            return DemoResult(run, runs.list_sessions(store, run.id), True)
    return DemoResult(run, runs.list_sessions(store, run.id), False)


def prepare_demo(store: Store, overrides: list[str] | None = None) -> RunView:
    """Write the demo project into a fresh folder of the store's home and create its run."""
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    dest = store.home / "demo" / f"{stamp}-{secrets.token_hex(2)}"
    spec_path = write_demo_project(dest)
    return create_run_from_file(store, spec_path, overrides)

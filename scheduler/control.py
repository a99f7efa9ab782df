"""Control verbs: the only way the CLI and the UI change a run.

Each verb validates against the run's current state and writes in one transaction.
"""

from __future__ import annotations

import os
import pwd
import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from longrun.scheduler import workspace as ws
from longrun.scheduler.budget import Spent, caps_left
from longrun.scheduler.demo import write_demo_project
from longrun.scheduler.launch import run_one_session
from longrun.scheduler.pricing import prices_for
from longrun.scheduler.session import take_checkpoint
from longrun.scheduler.spec import RunSpec, load_spec
from longrun.store import log, runs
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


def budget_document(store: Store, ref: str) -> dict[str, object]:
    """`longrun budget RUN --json`: every cap with what is spent and left, spend today and in the
    last hour, and the breakers."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    now = utcnow()
    today = runs.day_usage(store, run.id, runs.utc_day(now))
    live = [s for s in runs.list_sessions(store, run.id) if not s.is_final]
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

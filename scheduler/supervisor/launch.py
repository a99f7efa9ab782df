"""Starting a session process, watching it to its deadline, and settling how it ended.

A session runs as `python -m longrun.scheduler.session SESSION_ID`, started by a dispatcher
(`dispatch.py`) in a process group of its own. Whoever launched it (the CLI's `session run`, the
supervisor) kills the whole group
at the deadline, records `timed_out`, `crashed` or `killed` when the session could not record
its own end, and takes a checkpoint of the workspace so the next session starts from the work
that was done. The judge then runs in this process, never in the worker's (`judging/judge.py`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from longrun.scheduler.judging.judge import apply_judgement, judge_checkpoint
from longrun.scheduler.session.checkpoints import take_checkpoint
from longrun.scheduler.session.processes import process_alive
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.supervisor.dispatch import (
    Dispatcher,
    LocalDispatcher,
    RemoteSession,
    SessionProcess,
    runs_remotely,
)
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition
from longrun.store.models import FINAL_SESSION_STATES, RunState, SessionState, utcnow
from longrun.store.runs import RunView, SessionView

STALE_HEARTBEAT = timedelta(seconds=30)
FINISHED_RUN_STATES = {RunState.done, RunState.archived}


@dataclass
class LaunchedSession:
    session: SessionView
    process: SessionProcess | None
    """The session's process when it runs on this machine; None when a dispatcher ran it elsewhere."""
    remote: RemoteSession | None = None
    """What can be learnt of the session when it runs elsewhere."""


def reap_stale_sessions(store: Store, run_id: str) -> list[SessionView]:
    """Sessions recorded as live whose process is gone or whose heartbeat is stale become `crashed`.

    A session that runs elsewhere is left to the supervisor (`remote.py`): its pid is not one of
    this machine's."""
    reaped = []
    for s in runs.list_sessions(store, run_id):
        if s.state in FINAL_SESSION_STATES or runs_remotely(store, s):
            continue
        if not process_alive(s.pid):
            reaped.extend(settle(store, s, SessionState.crashed, "its process was gone when found"))
        elif heartbeat_stale(s):
            kill_group(s.pid)
            reaped.extend(settle(store, s, SessionState.crashed, "its heartbeat stopped"))
    return reaped


def heartbeat_stale(session: SessionView, now: datetime | None = None) -> bool:
    beat = session.heartbeat_at or session.created_at
    return (now or utcnow()) - beat > STALE_HEARTBEAT


def kill_group(pgid: int | None) -> None:
    """Kill a session's whole process group (its pid is its group id)."""
    if pgid is None:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_session(
    store: Store, run: RunView, *, not_after: datetime | None = None, dispatcher: Dispatcher | None = None
) -> LaunchedSession:
    """Create the session row and hand it to the dispatcher (by default: a local process group)."""
    if run.state in FINISHED_RUN_STATES:
        raise InvalidTransition(f"run {run.name} ({run.id}) is {run.state}: no new session can start")
    reap_stale_sessions(store, run.id)
    spec = RunSpec.model_validate(run.spec)
    session = runs.create_session(
        store, run.id, time_box=spec.session.time_box, wrap_up=spec.session.wrap_up, not_after=not_after
    )
    handle = (dispatcher or LocalDispatcher()).launch(store, session)
    if isinstance(handle, RemoteSession):
        return LaunchedSession(runs.get_session(store, session.id), None, handle)
    runs.set_session_pid(store, session.id, handle.pid)
    return LaunchedSession(runs.get_session(store, session.id), handle)


def watch(
    store: Store,
    launched: LaunchedSession,
    *,
    stop_at: datetime | None = None,
    poll_s: float = 0.25,
    obey_row: bool = False,
    wrap_up_when: Callable[[], bool] | None = None,
) -> SessionView:
    """Wait for the session to end; kill its process group at the deadline (or at `stop_at`, the
    caller's own limit, recorded as `killed`). Returns the final view.

    With `obey_row` (a worker running a session for a supervisor elsewhere, which cannot signal
    it), the session's row is read at every poll: a kill request ends it as `killed`, and an end
    the supervisor recorded (at its shutdown, or when this worker was late) kills it. Once
    `wrap_up_when()` is true (the watcher is being stopped), the session is asked to wrap up."""
    session = launched.session
    proc = launched.process
    if proc is None:
        raise InvalidTransition(f"session {session.n} runs elsewhere: it cannot be watched from here")
    asked_to_wrap_up = False
    while True:
        try:
            proc.wait(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            pass
        if wrap_up_when is not None and not asked_to_wrap_up and wrap_up_when():
            asked_to_wrap_up = True
            with store.writing() as conn:
                runs.request_session_end(conn, session.id, kill=False)
        now = utcnow()
        row = runs.get_session(store, session.id) if obey_row else None
        if row is not None and row.is_final:
            _kill_group(proc)
            break
        if row is not None and row.kill_requested:
            _kill_group(proc)
            settle(store, session, SessionState.killed, "stopped by request")
            break
        if now >= session.deadline_at:
            _kill_group(proc)
            settle(store, session, SessionState.timed_out, "killed at its deadline")
            break
        if stop_at is not None and now >= stop_at:
            _kill_group(proc)
            settle(store, session, SessionState.killed, "stopped: the caller's time limit was reached")
            break
    _kill_group(proc)  # whatever the session left running (a shell, a test run) goes with it
    final = runs.get_session(store, session.id)
    if final.state not in FINAL_SESSION_STATES:
        code = proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        settle(store, final, SessionState.crashed, f"its process {how} without recording an end")
    return runs.get_session(store, session.id)


def _kill_group(proc: SessionProcess) -> None:
    kill_group(proc.pid)
    proc.wait()


def settle(store: Store, session: SessionView, state: SessionState, reason: str) -> list[SessionView]:
    """Record an end the session did not record itself, after checkpointing the work it left."""
    run = runs.get_run(store, session.run_id)
    current = runs.get_session(store, session.id)
    if current.state in FINAL_SESSION_STATES:
        return []
    take_checkpoint(store, run, current, str(state), None)
    ended = runs.end_session(store, session.id, state, reason)
    return [ended] if ended else []


def run_one_session(store: Store, run: RunView, *, stop_at: datetime | None = None) -> SessionView:
    """Start a session, watch it to its end, judge the result and set the run's state.

    A run that was a draft or paused stays so (one session by hand does not start it), unless
    the judge decides it: done, or waiting for a person.
    """
    prior = run.state
    launched = start_session(store, run)
    session = watch(store, launched, stop_at=stop_at)
    judgement = judge_checkpoint(store, run.id, session_id=session.id, by="session run")
    spec = RunSpec.model_validate(run.spec)
    with store.writing() as conn:
        runs.mark_settled(conn, session.id)
        if apply_judgement(conn, store, run, spec, judgement, session.id) is None:
            failing = ", ".join(sorted(judgement.failing)) or "—"
            reason = f"session {session.n} {session.state}; not yet passing: {failing}"
            after = prior if prior in (RunState.draft, RunState.paused) else RunState.scheduled
            runs.set_run_state(conn, run.id, after, reason)
    return session

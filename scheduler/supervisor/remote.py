"""Watching a session that runs elsewhere: what the supervisor does each tick without a process.

A session handed to a queue (`dispatch.RemoteSession`) is run by a worker on another machine,
which claims its row, starts its process there, kills it at its deadline or when asked, and
records how it ended (`celery/task.py`). Its pid is the worker's, so the supervisor never
signals it; the row in the store is the truth:

- while no worker has claimed it (no pid yet), it is queued: no heartbeat is expected, and it
  ends `timed_out` if its deadline comes first (the worker that gets it later refuses it);
- once claimed, a stale heartbeat means the worker (or its machine) died: `crashed`, as for a
  local session, and the run resumes from its checkpoint with a new session;
- the worker ends it at its deadline; if it has not `GRACE` later (a hung worker, a clock that
  lags), the supervisor records `timed_out` itself, and the worker kills the process when it
  sees the row ended;
- when the queue says the task is over while the row is still live (the task failed, the
  worker refused it), the session ended without recording it: `crashed`.
"""

from __future__ import annotations

import time
from datetime import datetime

from longrun.scheduler.supervisor.dispatch import RemoteSession
from longrun.scheduler.supervisor.launch import STALE_HEARTBEAT, heartbeat_stale, settle
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.models import SessionState
from longrun.store.runs import SessionView

GRACE = STALE_HEARTBEAT
"""How long past its deadline a worker has to record the end of the session it runs."""
KILL_WAIT_S = 5.0
"""How long a worker has to kill a session it was asked to end now (it looks every second)."""


def watch_remote(store: Store, session: SessionView, handle: RemoteSession | None, now: datetime) -> None:
    """One tick's look at a live session that runs elsewhere (`handle` is None for one adopted
    from a supervisor that stopped: its row alone is then watched)."""
    if session.pid is None and now >= session.deadline_at:
        settle(store, session, SessionState.timed_out, "no worker took it before its deadline")
        return
    finished = handle.finished() if handle is not None else None
    if finished is not None:
        settle(store, session, SessionState.crashed, f"its worker's task {finished} before the session ended")
    elif session.pid is None:
        if session.kill_requested:
            settle(store, session, SessionState.killed, "stopped by request before a worker took it")
    elif heartbeat_stale(session, now):
        settle(store, session, SessionState.crashed, "its heartbeat stopped (its worker is gone)")
    elif now >= session.deadline_at + GRACE:
        settle(store, session, SessionState.timed_out, "its worker did not end it at its deadline")


def end_remote(store: Store, session_ids: set[int], reason: str, wait_s: float = KILL_WAIT_S) -> None:
    """Ask the workers to kill these sessions now, give them `wait_s` to record it, and record
    `killed` for the ones still live (their workers kill them when they see the end)."""
    live = [s for s in runs.live_sessions(store) if s.id in session_ids]
    if not live:
        return
    with store.writing() as conn:
        for s in live:
            runs.request_session_end(conn, s.id, kill=True)
    give_up = time.monotonic() + wait_s
    while any(s.pid is not None for s in live) and time.monotonic() < give_up:
        time.sleep(0.2)  # only a claimed session has a worker that can end it
        live = [s for s in runs.live_sessions(store) if s.id in session_ids]
    for s in live:
        settle(store, s, SessionState.killed, reason)

"""What a worker does with one queued session: claim its row, run its process here, watch it.

The claim (`runs.claim_session`) is the only door: a session the broker delivers twice (its
worker died and the visibility timeout passed, or a message came back for any other reason) is
run by whichever delivery claims it first, and every other delivery is refused, as is one for a
session that already ended. The process is the same one a supervisor starts on its own machine
(`python -m longrun.scheduler.session SESSION_ID`, in a process group of its own); the worker
kills it at its deadline or when the row says so, and records the end the session could not.
On Linux the process dies with its worker (`PR_SET_PDEATHSIG`), so a worker killed with -9 takes
its session along, and the supervisor sees the heartbeat stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from longrun.scheduler.supervisor import launch
from longrun.scheduler.supervisor.dispatch import session_log_path, start_cold
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.models import SessionState
from longrun.store.runs import SessionView

POLL_S = 1.0
"""How often the worker looks at the session's row (a kill request, an end the supervisor recorded)."""


class WrongStore(LongrunError):
    """The task names a session this worker's store does not have: it serves another store."""

    title = "wrong store"


@dataclass(frozen=True)
class Outcome:
    ran: bool
    """Whether this delivery ran the session (False: it was refused, and nothing was done)."""
    summary: str


def run_queued(
    home: Path,
    session_id: int,
    run_id: str,
    n: int,
    *,
    worker: str,
    task_id: str,
    redelivered: bool,
    stopping: Callable[[], bool] | None = None,
) -> Outcome:
    """Run session `n` of `run_id` (row `session_id`) here if this delivery can claim it. Once
    `stopping()` is true (the worker was asked to stop), the session is asked to wrap up."""
    store = Store.open(home, create=False)
    try:
        session = runs.get_session(store, session_id)
        if session.run_id != run_id or session.n != n:
            raise WrongStore(
                f"session {session_id} of the store in {store.home} is session {session.n} of run "
                f"{session.run_id}, not session {n} of run {run_id}: this worker serves another store"
            )
        who = {"worker": worker, "host": socket.gethostname(), "task_id": task_id, "redelivered": redelivered}
        claimed = runs.claim_session(store, session_id, os.getpid(), who)
        if claimed is None:
            why = why_refused(runs.get_session(store, session_id))
            return Outcome(False, f"session {n} of run {run_id} refused: {why}")
        final = run_here(store, claimed, stopping)
        return Outcome(True, f"session {n} of run {run_id}: {final.state} ({final.end_reason})")
    finally:
        store.close()


def why_refused(session: SessionView) -> str:
    if session.is_final:
        return f"it already ended ({session.state}: {session.end_reason})"
    if session.pid is not None:
        return "another worker has claimed it"
    return "its wrap-up time has come, so it would have no time to work"


def run_here(store: Store, session: SessionView, stopping: Callable[[], bool] | None = None) -> SessionView:
    """Start the claimed session's process and watch it to its end; record the end it could not."""
    log_path = session_log_path(store, session.run_id, session.n)
    try:
        proc = start_cold(store, session.id, log_path, preexec_fn=die_with(os.getpid()))
    except OSError as exc:
        launch.settle(store, session, SessionState.crashed, f"its worker could not start it: {exc.strerror}")
        return runs.get_session(store, session.id)
    launched = launch.LaunchedSession(session, proc)
    try:
        return launch.watch(store, launched, poll_s=POLL_S, obey_row=True, wrap_up_when=stopping)
    except BaseException as exc:
        # A cold shutdown of the worker (SIGQUIT, a second ctrl-c) raises inside the watch; so may
        # the store. Either way nobody would watch the session any more: it ends here and now.
        if isinstance(exc, KeyboardInterrupt | SystemExit) or (stopping is not None and stopping()):
            _end_here(store, session, proc, SessionState.killed, "its worker was stopped")
        else:
            _end_here(store, session, proc, SessionState.crashed, f"its worker could not watch it: {exc}")
        raise


def _end_here(
    store: Store, session: SessionView, proc: subprocess.Popen[bytes], state: SessionState, reason: str
) -> None:
    """Kill the session's process group and record the end, if the store lets us (else the
    supervisor sees the heartbeat stop)."""
    launch.kill_group(proc.pid)
    proc.wait()
    with contextlib.suppress(LongrunError):
        launch.settle(store, session, state, reason[:300])


def _prctl() -> Callable[..., int] | None:
    """libc's `prctl` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child killed when the thread that started it ends (Linux's
    parent-death signal: the solo pool runs every task on the worker's main thread), or None
    where there is no such signal."""
    prctl = _PRCTL
    if prctl is None:
        return None

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the signal was asked for
            os._exit(1)

    return die_with_parent

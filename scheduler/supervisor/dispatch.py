"""Where a session's process runs: the dispatcher seam.

The supervisor (and `longrun session run`) creates the session's row, then hands it to a
dispatcher to run `python -m longrun.scheduler.session SESSION_ID`. The local dispatcher starts it
on this machine in a process group of its own and returns the process, which the caller watches
and kills at the deadline. A dispatcher that runs sessions elsewhere (a task queue's workers)
returns None: the session's heartbeat in the store is then the only sign of its life.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from longrun.store.db import Store
from longrun.store.runs import SessionView


def session_log_path(store: Store, run_id: str, n: int) -> Path:
    path = store.home / "logs" / run_id / f"session-{n}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class Dispatcher(Protocol):
    def launch(self, store: Store, session: SessionView) -> subprocess.Popen[bytes] | None:
        """Start the session's process; return it when it runs here, None when it runs elsewhere."""
        ...


class LocalDispatcher:
    """Sessions as child processes of this one, each in a new process group, output to its log."""

    def launch(self, store: Store, session: SessionView) -> subprocess.Popen[bytes]:
        log_path = session_log_path(store, session.run_id, session.n)
        env = dict(os.environ, LONGRUN_HOME=str(store.home), PYTHONUNBUFFERED="1")
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "longrun.scheduler.session", str(session.id)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

"""Where a session's process runs: the dispatcher seam.

The supervisor (and `longrun session run`) creates the session's row, then hands it to a
dispatcher to run `python -m longrun.scheduler.session SESSION_ID`. The local dispatcher starts it
on this machine in a process group of its own (forked from a warm starter, for the supervisor)
and returns the process, which the caller watches and kills at the deadline. A dispatcher that
runs sessions elsewhere (a task queue's workers, `supervisor/celery/`) returns a `RemoteSession`:
there is no process here to wait on or kill, and the session's row in the store is the truth
(a worker claims it, its heartbeat says it lives, and the worker records its end).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from longrun.scheduler.session.processes import process_alive
from longrun.store import log
from longrun.store.db import Store
from longrun.store.runs import SessionView


def session_log_path(store: Store, run_id: str, n: int) -> Path:
    path = store.home / "logs" / run_id / f"session-{n}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class SessionProcess(Protocol):
    """What the supervisor needs of a session's process: `subprocess.Popen`, or `Forked`."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class RemoteSession:
    """A session handed to run elsewhere: what the supervisor can learn of it besides its row.

    Its pid in the store (a worker's, on another machine) means nothing here: it is never
    signalled nor looked up. This base knows nothing more; a queue that can tell when its task is
    over says so through `finished`."""

    def finished(self) -> str | None:
        """Why the remote side is done with the session (its task ended), or None while it may
        still run it."""
        return None


QUEUED = "session_queued"
"""The event a dispatcher writes when it hands a session to a queue instead of starting it here."""


def runs_remotely(store: Store, session: SessionView) -> bool:
    """Whether the session was handed to a queue to run elsewhere (so its pid means nothing here)."""
    queued = log.latest_event(store, session.run_id, QUEUED)
    return queued is not None and queued.session_id == session.id


class Dispatcher(Protocol):
    def launch(self, store: Store, session: SessionView) -> SessionProcess | RemoteSession:
        """Start the session: its process when it runs here, a `RemoteSession` when it runs elsewhere."""
        ...


def session_env(store: Store) -> dict[str, str]:
    return dict(os.environ, LONGRUN_HOME=str(store.home), PYTHONUNBUFFERED="1")


def start_cold(
    store: Store, session_id: int, log_path: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m longrun.scheduler.session SESSION_ID` as a child of this process, in a process
    group of its own, its output appended to its log; `preexec_fn` runs in the child first."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "longrun.scheduler.session", str(session_id)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=session_env(store),
            start_new_session=True,
            preexec_fn=preexec_fn,
        )


class LocalDispatcher:
    """Sessions as processes on this machine, each in a new process group, output to its log.

    With `warm`, a warm starter (`session/warm.py`, made by `prepare`) forks each session from a
    process that has already imported what a session needs; when it cannot, the session starts
    cold, as a child process of this one."""

    def __init__(self, warm: bool = False) -> None:
        self.warm = warm
        self._starter: WarmStarter | None = None

    def prepare(self, store: Store) -> None:
        """Start the warm starter now, so the first session need not wait for its imports."""
        if self.warm and self._starter is None:
            self._starter = WarmStarter(session_env(store))

    def close(self) -> None:
        if self._starter is not None:
            self._starter.close()
            self._starter = None

    def launch(self, store: Store, session: SessionView) -> SessionProcess:
        log_path = session_log_path(store, session.run_id, session.n)
        if self.warm:
            self.prepare(store)
            assert self._starter is not None
            pid = self._starter.fork(session.id, log_path)
            if pid is not None:
                return Forked(pid)
            self.close()  # this session starts cold; the next one gets a new warm starter
        return start_cold(store, session.id, log_path)


class WarmStarter:
    """The supervisor's side of `python -m longrun.scheduler.session --warm`."""

    ANSWER_S = 30.0
    """How long a request may wait for its pid (the first waits for the imports)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "longrun.scheduler.session", "--warm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def _answer(self) -> str | None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], self.ANSWER_S)
        return self.process.stdout.readline().strip() if ready else None

    def fork(self, session_id: int, log_path: Path) -> int | None:
        """The pid of the session's process, forked warm; None when the starter could not."""
        if "\n" in str(log_path):
            return None
        with self._lock:
            try:
                if not self._ready:
                    if self._answer() != "ready":
                        return None
                    self._ready = True
                assert self.process.stdin is not None
                self.process.stdin.write(f"{session_id} {log_path}\n")
                self.process.stdin.flush()
                answer = self._answer()
            except (OSError, ValueError):
                return None
        return int(answer) if answer and answer.isdigit() else None

    def close(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Forked:
    """A session forked by the warm starter: not this process's child, so it is watched by its pid
    (its exit code is not known here: the starter reaps it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def poll(self) -> int | None:
        if self._returncode is None and not process_alive(self.pid):
            self._returncode = 0
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(["session", str(self.pid)], timeout or 0)
            time.sleep(0.02)
        assert self._returncode is not None
        return self._returncode

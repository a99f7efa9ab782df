"""The supervisor's watch over live sessions, every tick, and their end when it shuts down.

A live session is one of three kinds, each watched its own way:

- a child: a process this supervisor started here; it is waited on, and its process group is
  killed at its deadline or when a person stops it;
- adopted here: a session of this machine that this supervisor did not start (the one before it
  did, or `longrun session run`); watched by its pid and its heartbeat;
- elsewhere: a session a dispatcher handed to a queue (`dispatch.RemoteSession`); its pid is
  another machine's, so it is watched through its row and its queue (`remote.py`), never
  signalled.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from longrun.scheduler.session.processes import process_alive
from longrun.scheduler.supervisor import launch, remote
from longrun.scheduler.supervisor.dispatch import RemoteSession, SessionProcess, runs_remotely
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.models import SessionState, utcnow
from longrun.store.runs import SessionView


class SessionWatch:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.children: dict[int, SessionProcess] = {}
        self.elsewhere: dict[int, RemoteSession | None] = {}
        """Live sessions that run elsewhere, with what their queue can tell (None: adopted)."""
        self.here: set[int] = set()
        """Live sessions of this machine that are not this supervisor's children (adopted)."""

    def started(self, launched: launch.LaunchedSession) -> None:
        if launched.process is not None:
            self.children[launched.session.id] = launched.process
        elif launched.remote is not None:
            self.elsewhere[launched.session.id] = launched.remote

    def tick(self, now: datetime) -> None:
        """Kill sessions past their deadline or asked to stop; mark those whose process is gone or
        whose heartbeat is stale as `crashed`."""
        live = runs.live_sessions(self.store)
        live_ids = {s.id for s in live}
        for session_id, proc in list(self.children.items()):
            if session_id not in live_ids and proc.poll() is not None:
                del self.children[session_id]  # ended on its own and recorded it: reap the process
        self.elsewhere = {i: h for i, h in self.elsewhere.items() if i in live_ids}
        self.here &= live_ids
        for s in live:
            if self.runs_elsewhere(s):
                remote.watch_remote(self.store, s, self.elsewhere[s.id], now)
                continue
            child = self.children.get(s.id)
            exited = child is not None and child.poll() is not None
            gone = exited or (child is None and not process_alive(s.pid))
            if s.pid is None and child is None and now - s.created_at < launch.STALE_HEARTBEAT:
                continue  # being started by someone right now
            if gone:
                launch.kill_group(s.pid)
                fresh = runs.get_session(self.store, s.id)
                if not fresh.is_final:
                    code = child.returncode if child is not None else None
                    how = f"killed by signal {-code}" if code is not None and code < 0 else "gone"
                    launch.settle(self.store, fresh, SessionState.crashed, f"its process was {how}")
                self.children.pop(s.id, None)
            elif s.kill_requested:
                self._end(s, SessionState.killed, "stopped by request")
            elif now >= s.deadline_at:
                self._end(s, SessionState.timed_out, "killed at its deadline")
            elif launch.heartbeat_stale(s, now):
                self._end(s, SessionState.crashed, "its heartbeat stopped")

    def runs_elsewhere(self, session: SessionView) -> bool:
        """Whether a live session runs on another machine (asked of the store once for each session
        this supervisor did not start)."""
        if session.id in self.elsewhere:
            return True
        if session.id in self.children or session.id in self.here:
            return False
        if runs_remotely(self.store, session):
            self.elsewhere[session.id] = None
            return True
        self.here.add(session.id)
        return False

    def _end(self, session: SessionView, state: SessionState, reason: str) -> None:
        launch.kill_group(session.pid)
        proc = self.children.pop(session.id, None)
        if proc is not None:
            proc.wait()
        launch.settle(self.store, session, state, reason)

    def shut_down(self, grace: timedelta) -> None:
        """Tell the sessions to wrap up, give them `grace`, then kill what is left and record it
        (a session elsewhere is asked to be killed by its worker first)."""
        live = runs.live_sessions(self.store)
        elsewhere = {s.id for s in live if self.runs_elsewhere(s)}
        with self.store.writing() as conn:
            for s in live:
                if s.id in self.children or s.pid or s.id in elsewhere:
                    runs.request_session_end(conn, s.id, kill=False)
        deadline = utcnow() + grace
        while utcnow() < deadline and (
            any(p.poll() is None for p in self.children.values())
            or any(s.id in elsewhere and s.pid is not None for s in runs.live_sessions(self.store))
        ):  # a session elsewhere that no worker has claimed has nobody to wrap it up
            threading.Event().wait(0.2)
        remote.end_remote(self.store, elsewhere, "the supervisor shut down")
        for s in runs.live_sessions(self.store):
            if s.id not in elsewhere and (s.id in self.children or s.pid):
                launch.kill_group(s.pid)
                proc = self.children.get(s.id)
                if proc is not None:
                    proc.wait()
                launch.settle(self.store, s, SessionState.killed, "the supervisor shut down")

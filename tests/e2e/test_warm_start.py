"""The supervisor's warm starter: sessions forked from a process that has imported what they need
run exactly as cold ones do, in a process group of their own, and a starter that is gone leaves
sessions starting cold, not failing."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from longrun.scheduler.control import create_run_from_file, start
from longrun.scheduler.supervisor import launch
from longrun.scheduler.supervisor.dispatch import Forked, LocalDispatcher
from longrun.store import log, runs
from longrun.store.db import Store

TURNS = [
    {"tool": "bash", "input": {"command": "echo warm > warm.txt; ps -o pgid= -p $$ >/dev/null; echo ok"}},
    {"text": "Wrote warm.txt."},
]


def test_a_session_forked_warm_runs_as_a_cold_one_would(store: Store, write_spec: Any) -> None:
    run = create_run_from_file(store, write_spec([TURNS, TURNS, TURNS]))
    start(store, run.id)
    dispatcher = LocalDispatcher(warm=True)
    try:
        launched = launch.start_session(store, runs.get_run(store, run.id), dispatcher=dispatcher)
        assert isinstance(launched.process, Forked)
        pid = launched.process.pid
        assert pid != os.getpid() and pid not in _children()  # forked by the starter, not by us
        assert launched.session.pid == pid
        ended = launch.watch(store, launched)
        assert (ended.state, ended.end_reason) == ("ended", "finished"), ended
        assert runs.get_session(store, ended.id).pid == pid  # the session recorded the same process
        results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
        assert results[0]["output"].strip() == "ok" and not results[0]["is_error"]
        assert (Path(run.workspace) / "warm.txt").read_text() == "warm\n"
        log_file = store.home / "logs" / run.id / "session-1.log"
        assert "session ended: finished" in log_file.read_text()

        # The starter dies: the next session starts cold, as a child of this process, and the one
        # after it is warm again, from a new starter.
        starter = dispatcher._starter
        assert starter is not None
        os.kill(starter.process.pid, signal.SIGKILL)
        starter.process.wait()
        second = launch.start_session(store, runs.get_run(store, run.id), dispatcher=dispatcher)
        assert second.process is not None and not isinstance(second.process, Forked)
        assert second.process.pid in _children()
        assert launch.watch(store, second).end_reason == "finished"
        third = launch.start_session(store, runs.get_run(store, run.id), dispatcher=dispatcher)
        assert isinstance(third.process, Forked)
        assert launch.watch(store, third).end_reason == "finished"
    finally:
        dispatcher.close()


def test_a_session_forked_warm_is_killed_with_its_group_at_its_deadline(
    store: Store, write_spec: Any
) -> None:
    slow = [{"tool": "bash", "input": {"command": "sleep 600"}}, {"text": "never"}]
    run = create_run_from_file(store, write_spec([slow], time_box="10s", wrap_up="5s"))
    start(store, run.id)
    dispatcher = LocalDispatcher(warm=True)
    try:
        launched = launch.start_session(store, runs.get_run(store, run.id), dispatcher=dispatcher)
        assert isinstance(launched.process, Forked)
        assert os.getpgid(launched.process.pid) == launched.process.pid  # a group of its own
        ended = launch.watch(store, launched)
        assert ended.state == "timed_out"
        assert not Path(f"/proc/{launched.process.pid}").exists()
    finally:
        dispatcher.close()


def _children() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found
